"""Launch test: all three nodes (launch/spotvlm.launch.py) with tiny models, fed by a fixture camera.

Asserts that answers carry the header of the frame they answer, that a subscriber joining late still
gets the latched LVLM context, that the edge uses that context, that every node reports diagnostics,
that parameters are described and validated by the schema, and that deactivate/activate stop and
resume the edge.
Runs under ``colcon test`` and plain ``pytest`` (launch_testing's pytest plugin); skips without ROS.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

import pytest
from ros_env import LAUNCH_TESTING_MISSING

if LAUNCH_TESTING_MISSING:
    pytest.skip(LAUNCH_TESTING_MISSING, allow_module_level=True)

import launch_testing
import launch_testing.actions
import launch_testing.asserts
from ament_index_python.packages import get_package_share_directory
from diagnostic_msgs.msg import DiagnosticArray
from launch.actions import IncludeLaunchDescription, SetEnvironmentVariable
from launch.launch_description_sources import PythonLaunchDescriptionSource
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from ros_fixtures import FRAME_ID, LATCHED, NODE_ENV, RosHarness, stamp_ns, tiny_params
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from launch import LaunchDescription
from spotvlm_msgs.msg import EdgeAnswer, LvlmContext

CAMERA = "/fixture/image_raw"
STARTUP_S = 180.0


@pytest.mark.launch_test
def generate_test_description() -> LaunchDescription:
    params = tiny_params(Path(tempfile.mkdtemp(prefix="spotvlm-launch-")) / "params.yaml")
    launch_file = os.path.join(get_package_share_directory("spotvlm_ros"), "launch", "spotvlm.launch.py")
    arguments = {"params_file": str(params), "camera_topic": CAMERA}
    return LaunchDescription(
        [
            *(SetEnvironmentVariable(k, v) for k, v in NODE_ENV.items()),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(launch_file), launch_arguments=arguments.items()
            ),
            launch_testing.actions.ReadyToTest(),
        ]
    )


class TestGraph(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.ros = RosHarness()
        cls.answers = cls.ros.collect(EdgeAnswer, "/spotvlm_edge/answer")
        cls.detections = cls.ros.collect(Detection2DArray, "/spotvlm_edge/detections")
        cls.contexts = cls.ros.collect(LvlmContext, "/context", LATCHED)
        cls.diagnostics = cls.ros.collect(DiagnosticArray, "/diagnostics")
        cls.focus = cls.ros.collect(Image, "/spotvlm_edge/focus_image")
        cls.ros.camera(CAMERA, rate_hz=5.0)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.ros.close()

    def test_1_answers_carry_the_frame_header(self) -> None:
        self.assertTrue(self.answers.wait(lambda m: len(m) >= 5, STARTUP_S), "fewer than 5 edge answers")
        for msg in self.answers.messages:
            self.assertIn(stamp_ns(msg.header), self.ros.published, "answer stamp is not a published frame's")
            self.assertEqual(msg.header.frame_id, FRAME_ID)
            self.assertEqual(msg.task, "vqa")
            self.assertGreater(msg.inference_s, 0.0)
            self.assertGreater(msg.prompt_tokens, 0)
        self.assertTrue(self.detections.wait(lambda m: len(m) >= 5, 30.0))
        answered = {stamp_ns(m.header) for m in self.answers.messages}
        self.assertTrue(
            {stamp_ns(m.header) for m in self.detections.messages} <= answered | set(self.ros.published)
        )

    def test_2_late_subscriber_gets_the_latched_context(self) -> None:
        self.assertTrue(self.contexts.wait(lambda m: len(m) >= 1, STARTUP_S), "no LVLM context published")
        late = self.ros.collect(LvlmContext, "/context", LATCHED)
        self.assertTrue(late.wait(lambda m: len(m) >= 1, 10.0), "a late subscriber got no latched context")
        context = late.messages[0]
        self.assertIn(stamp_ns(context.header), self.ros.published)
        self.assertEqual(context.header.frame_id, FRAME_ID)
        self.assertTrue(context.request_id.startswith("spotvlm_bridge-"), context.request_id)
        self.assertTrue(context.model.startswith("tiny:"), context.model)
        self.assertGreater(context.round_trip_s, 0.0)
        self.assertEqual((context.image_width, context.image_height), (96, 72))  # keyframes.max_image_side

    def test_3_edge_answers_with_the_context(self) -> None:
        def used(messages: list) -> bool:
            return any(m.context_id and m.context_status == "used" for m in messages)

        self.assertTrue(self.answers.wait(used, STARTUP_S), "no answer used the LVLM context")
        with_context = [m for m in self.answers.messages if m.context_id]
        contexts = {c.request_id for c in self.contexts.messages}
        self.assertTrue(all(m.context_id in contexts for m in with_context))
        self.assertTrue(all(m.context_age_s >= 0.0 for m in with_context))

    def test_4_every_node_reports_diagnostics(self) -> None:
        def names(messages: list) -> set[str]:
            return {s.name.split(":")[0] for array in messages for s in array.status}

        wanted = {"spotvlm_edge", "spotvlm_bridge", "spotvlm_lvlm_server"}
        self.assertTrue(
            self.diagnostics.wait(lambda m: wanted <= names(m), 30.0), names(self.diagnostics.messages)
        )
        edge = [s for a in self.diagnostics.messages for s in a.status if s.name.startswith("spotvlm_edge")]
        keys = {kv.key for kv in edge[-1].values}
        self.assertTrue({"svlm_rate_hz", "svlm_step_ms_p95", "context_age_s", "frames_dropped"} <= keys, keys)
        bridge = [
            s for a in self.diagnostics.messages for s in a.status if s.name.startswith("spotvlm_bridge")
        ]
        keys = {kv.key for kv in bridge[-1].values}
        self.assertTrue({"lvlm_round_trip_s_p50", "lvlm_round_trip_s_p95", "in_flight"} <= keys, keys)

    def test_5_parameters_are_described_and_validated_by_the_schema(self) -> None:
        described = ros2("param describe /spotvlm_edge focus.min_confidence")
        self.assertIn("Propagated regions below this are dropped", described)
        self.assertIn("Min value: 0.0", described)
        self.assertIn("Max value: 1.0", described)
        rejected = ros2("param set /spotvlm_edge context.max_context_age_s 0.0")
        self.assertIn("context.max_context_age_s = 0.0: Input should be greater than 0", rejected)
        self.assertIn("read-only", ros2("param set /spotvlm_edge edge.backend zero"))
        self.assertIn("successful", ros2("param set /spotvlm_edge prompt 'Is it raining?'"))
        self.assertIn("Is it raining?", ros2("param get /spotvlm_edge prompt"))
        count = len(self.answers.messages)
        self.assertTrue(
            self.answers.wait(lambda m: len(m) >= count + 3, 60.0), "no answers after a prompt change"
        )

    def test_6_deactivate_frees_the_model_and_activate_resumes(self) -> None:
        self.assertTrue(self.transition(Transition.TRANSITION_DEACTIVATE), "deactivate failed")
        time.sleep(1.0)
        stopped = len(self.answers.messages)
        time.sleep(3.0)
        self.assertEqual(len(self.answers.messages), stopped, "an inactive edge answered")
        state = self.ros.call(GetState, "/spotvlm_edge/get_state", GetState.Request())
        self.assertEqual(state.current_state.label, "inactive")
        self.assertTrue(self.transition(Transition.TRANSITION_ACTIVATE), "activate failed")
        self.assertTrue(
            self.answers.wait(lambda m: len(m) >= stopped + 3, 60.0), "no answers after reactivation"
        )

    def transition(self, transition_id: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.ros.call(ChangeState, "/spotvlm_edge/change_state", request).success


def ros2(arguments: str) -> str:
    """Run a ``ros2`` verb without the daemon (nothing is left running)."""
    command = f"ros2 {arguments} --no-daemon"
    proc = subprocess.run(
        command, shell=True, capture_output=True, text=True, timeout=60, env=os.environ.copy()
    )
    return proc.stdout + proc.stderr


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_nodes_exit_cleanly(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])

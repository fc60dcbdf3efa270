"""Launch test: goals past keyframes.timeout_s are cancelled by the bridge and the server honours it.

A tiny LVLM asked for many tokens takes longer than the 0.3 s timeout: the bridge cancels each goal,
the server ends it as canceled mid-generation (its diagnostics count them) after streaming partial
answers as feedback, and the edge keeps answering. Skips without ROS.
"""

from __future__ import annotations

import os
import tempfile
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
from ros_fixtures import NODE_ENV, RosHarness, tiny_params

from launch import LaunchDescription
from spotvlm_msgs.action import QueryLVLM
from spotvlm_msgs.msg import EdgeAnswer

CAMERA = "/fixture/image_raw"
STARTUP_S = 180.0


@pytest.mark.launch_test
def generate_test_description() -> LaunchDescription:
    params = tiny_params(
        Path(tempfile.mkdtemp(prefix="spotvlm-cancel-")) / "params.yaml",
        cloud={"max_new_tokens": 512},
        keyframes={"timeout_s": 0.3, "min_interval_s": 0.0},
    )
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


def latest_values(messages: list, node: str) -> dict[str, str]:
    statuses = [s for array in messages for s in array.status if s.name.startswith(node)]
    return {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}


class TestCancel(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.ros = RosHarness()
        cls.answers = cls.ros.collect(EdgeAnswer, "/spotvlm_edge/answer")
        cls.diagnostics = cls.ros.collect(DiagnosticArray, "/diagnostics")
        cls.feedback = cls.ros.collect(QueryLVLM.Impl.FeedbackMessage, "/query_lvlm/_action/feedback")
        cls.ros.camera(CAMERA, rate_hz=5.0)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.ros.close()

    def test_bridge_cancels_late_goals_and_the_server_honours_it(self) -> None:
        def cancelled(messages: list) -> bool:
            bridge = latest_values(messages, "spotvlm_bridge")
            server = latest_values(messages, "spotvlm_lvlm_server")
            return int(bridge.get("timeouts", 0)) >= 2 and int(server.get("canceled", 0)) >= 2

        ok = self.diagnostics.wait(cancelled, STARTUP_S)
        bridge = latest_values(self.diagnostics.messages, "spotvlm_bridge")
        server = latest_values(self.diagnostics.messages, "spotvlm_lvlm_server")
        self.assertTrue(ok, f"bridge {bridge}, server {server}")
        self.assertEqual(server.get("succeeded", "0"), "0", "a goal ran to the end despite its timeout")
        # no goal succeeded, so every partial answer was published before its goal's (canceled) result
        partials = [m.feedback.partial_text for m in self.feedback.messages]
        self.assertTrue(partials and all(partials), f"no partial answers as feedback: {partials[:3]}")
        self.assertTrue(self.answers.wait(lambda m: len(m) >= 5, 30.0), "the edge stopped answering")


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_processes_exit_cleanly(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])

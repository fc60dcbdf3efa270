"""Launch test: all three nodes on two fixture cameras (``camera_topics:=[...]``), synchronized by stamp.

Asserts that a synchronized group is answered (answer and context of the first camera's frame, the
context listing both cameras, a focus image per camera), that frames further apart than
``camera.sync_slop_s`` are not answered and answering resumes once they agree again, and that a camera
that stops publishing stops the groups, is named in the edge's warning, and answering resumes when it
comes back. Runs under ``colcon test`` and plain ``pytest``; skips without ROS.
"""

from __future__ import annotations

import os
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
from launch.actions import IncludeLaunchDescription, SetEnvironmentVariable
from launch.launch_description_sources import PythonLaunchDescriptionSource
from ros_fixtures import LATCHED, NODE_ENV, RosHarness, stamp_ns, tiny_params
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from launch import LaunchDescription
from spotvlm_msgs.msg import EdgeAnswer, LvlmContext

LEFT, RIGHT = "/fixture/left/image_raw", "/fixture/right/image_raw"
CAMERAS = {LEFT: "left", RIGHT: "right"}
FOCUS = {"left": "/spotvlm_edge/focus_image/fixture_left", "right": "/spotvlm_edge/focus_image/fixture_right"}
SLOP_S = 0.05
STARTUP_S = 180.0
SCALE = float(os.environ.get("SPOTVLM_TEST_TIME_SCALE", "1"))


@pytest.mark.launch_test
def generate_test_description() -> LaunchDescription:
    params = tiny_params(
        Path(tempfile.mkdtemp(prefix="spotvlm-multicam-")) / "params.yaml",
        camera={"sync_slop_s": SLOP_S, "no_frames_warn_s": 2.0},
    )
    launch_file = os.path.join(get_package_share_directory("spotvlm_ros"), "launch", "spotvlm.launch.py")
    arguments = {"params_file": str(params), "camera_topics": f"[{LEFT}, {RIGHT}]"}
    return LaunchDescription(
        [
            *(SetEnvironmentVariable(k, v) for k, v in NODE_ENV.items()),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(launch_file), launch_arguments=arguments.items()
            ),
            launch_testing.actions.ReadyToTest(),
        ]
    )


class TestTwoCameras(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.ros = RosHarness()
        cls.answers = cls.ros.collect(EdgeAnswer, "/spotvlm_edge/answer")
        cls.detections = cls.ros.collect(Detection2DArray, "/spotvlm_edge/detections")
        cls.contexts = cls.ros.collect(LvlmContext, "/context", LATCHED)
        cls.focus = {name: cls.ros.collect(Image, topic) for name, topic in FOCUS.items()}
        cls.rig = cls.ros.cameras(CAMERAS, rate_hz=5.0)
        cls.rig.offsets_ns[RIGHT] = 10_000_000  # within the slop: the right camera 10 ms late

    @classmethod
    def tearDownClass(cls) -> None:
        cls.ros.close()

    def answered_while(self, seconds: float) -> int:
        """Answers to frames of the ticks published during the next ``seconds``."""
        first = self.rig.ticks
        time.sleep(seconds * SCALE)
        fresh = set(self.rig.sent["left"][first:])
        return sum(stamp_ns(m.header) in fresh for m in self.answers.messages)

    def test_1_a_synchronized_group_is_answered(self) -> None:
        self.assertTrue(self.answers.wait(lambda m: len(m) >= 3, STARTUP_S * SCALE), "no answer to a group")
        left = set(self.rig.sent["left"])
        for msg in self.answers.messages:
            self.assertEqual(msg.header.frame_id, "left")  # the group's first camera
            self.assertIn(stamp_ns(msg.header), left)
        self.assertTrue(self.detections.wait(lambda m: len(m) >= 3, 30.0 * SCALE))
        self.assertTrue(all(m.header.frame_id == "left" for m in self.detections.messages))
        self.assertTrue(self.contexts.wait(lambda m: len(m) >= 1, STARTUP_S * SCALE), "no LVLM context")
        context = self.contexts.messages[-1]
        self.assertEqual(context.header.frame_id, "left")
        self.assertEqual(list(context.camera_frame_ids), ["left", "right"])
        self.assertEqual(list(context.camera_widths), [96, 96])  # keyframes.max_image_side of 160x120
        for name, focus in self.focus.items():
            self.assertTrue(focus.wait(lambda m: len(m) >= 2, 60.0 * SCALE), f"no focus image of {name}")
            self.assertEqual(focus.messages[-1].header.frame_id, name)

    def test_2_frames_further_apart_than_the_slop_are_not_answered(self) -> None:
        self.rig.offsets_ns[RIGHT] = int(
            2 * SLOP_S * 1e9
        )  # half the 200 ms frame period: no pair within 50 ms
        time.sleep(2.0 * SCALE)  # the step in progress ends
        self.assertEqual(self.answered_while(4.0), 0, "frames 100 ms apart were answered as one group")
        self.rig.offsets_ns[RIGHT] = 10_000_000
        self.assertGreater(self.answered_while(6.0), 0, "answering did not resume once the cameras agreed")

    def test_3_a_camera_that_stops_stops_the_groups_and_is_named(self, proc_output) -> None:
        self.rig.stopped.add(RIGHT)
        time.sleep(2.0 * SCALE)
        self.assertEqual(self.answered_while(4.0), 0, "groups were answered without the right camera")
        proc_output.assertWaitFor(f"no frame on {RIGHT}", timeout=30 * SCALE)
        proc_output.assertWaitFor(
            "no group is answered until this camera publishes again", timeout=10 * SCALE
        )
        self.rig.stopped.clear()
        self.assertGreater(self.answered_while(6.0), 0, "answering did not resume when the camera came back")


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_processes_exit_cleanly(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])

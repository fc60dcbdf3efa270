"""Launch test: launch/replay.launch.py plays the demo bag from rosbags/ with --clock beside the nodes.

Asserts that /clock runs on the bag's time, and that answers and context carry the bag frames' stamps
and frame id. rviz2 is off. Skips without ROS.
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
from launch.actions import IncludeLaunchDescription, SetEnvironmentVariable
from launch.launch_description_sources import PythonLaunchDescriptionSource
from ros_fixtures import BEST_EFFORT, LATCHED, NODE_ENV, RosHarness, stamp_ns, tiny_params
from rosgraph_msgs.msg import Clock

from launch import LaunchDescription
from spotvlm_msgs.msg import EdgeAnswer, LvlmContext

BAG = Path(__file__).resolve().parents[2] / "rosbags" / "demo"
BAG_START_NS = 1_700_000_000 * 1_000_000_000
BAG_END_NS = BAG_START_NS + 60 * 1_000_000_000
STARTUP_S = 180.0


@pytest.mark.launch_test
def generate_test_description() -> LaunchDescription:
    params = tiny_params(Path(tempfile.mkdtemp(prefix="spotvlm-replay-")) / "params.yaml")
    launch_file = os.path.join(get_package_share_directory("spotvlm_ros"), "launch", "replay.launch.py")
    # models:=params: the tiny models of the parameter file (the replay launch defaults to the demo models)
    arguments = {"bag": str(BAG), "params_file": str(params), "rviz": "false", "models": "params"}
    return LaunchDescription(
        [
            *(SetEnvironmentVariable(k, v) for k, v in NODE_ENV.items()),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(launch_file), launch_arguments=arguments.items()
            ),
            launch_testing.actions.ReadyToTest(),
        ]
    )


class TestReplay(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.ros = RosHarness()
        cls.clock = cls.ros.collect(Clock, "/clock", BEST_EFFORT)  # what ros2 bag play offers
        cls.answers = cls.ros.collect(EdgeAnswer, "/spotvlm_edge/answer")
        cls.contexts = cls.ros.collect(LvlmContext, "/context", LATCHED)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.ros.close()

    def test_bag_plays_on_sim_time_and_the_nodes_answer_its_frames(self) -> None:
        self.assertTrue(self.clock.wait(lambda m: len(m) >= 10, 60.0), "ros2 bag play published no /clock")
        clock_ns = [c.clock.sec * 1_000_000_000 + c.clock.nanosec for c in self.clock.messages]
        self.assertTrue(all(BAG_START_NS <= t <= BAG_END_NS for t in clock_ns))
        self.assertTrue(self.answers.wait(lambda m: len(m) >= 3, STARTUP_S), "no answers to the bag's frames")
        for answer in self.answers.messages:
            self.assertTrue(BAG_START_NS <= stamp_ns(answer.header) <= BAG_END_NS)
            self.assertEqual(answer.header.frame_id, "camera")
        self.assertTrue(self.contexts.wait(lambda m: len(m) >= 1, STARTUP_S), "no context from the replay")
        context = self.contexts.messages[0]
        self.assertTrue(BAG_START_NS <= stamp_ns(context.header) <= BAG_END_NS)
        self.assertEqual(context.header.frame_id, "camera")


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_processes_exit_cleanly(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])

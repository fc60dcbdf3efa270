"""Launch test: the classic "node receives nothing" QoS mismatch is reported, naming topic and QoS.

Only the edge runs (launch/spotvlm_base.launch.py edge:=true), subscribing the camera as reliable while
the fixture camera publishes best effort: no frame can arrive, and the edge must say why. Skips without
ROS.
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
from ros_fixtures import BEST_EFFORT, NODE_ENV, RosHarness, tiny_params

from launch import LaunchDescription

CAMERA = "/fixture/best_effort_camera"


@pytest.mark.launch_test
def generate_test_description() -> LaunchDescription:
    params = tiny_params(
        Path(tempfile.mkdtemp(prefix="spotvlm-qos-")) / "params.yaml",
        camera={"reliability": "reliable", "no_frames_warn_s": 2.0},
    )
    launch_file = os.path.join(get_package_share_directory("spotvlm_ros"), "launch", "spotvlm_base.launch.py")
    arguments = {"params_file": str(params), "camera_topic": CAMERA, "bridge": "false", "server": "false"}
    return LaunchDescription(
        [
            *(SetEnvironmentVariable(k, v) for k, v in NODE_ENV.items()),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(launch_file), launch_arguments=arguments.items()
            ),
            launch_testing.actions.ReadyToTest(),
        ]
    )


class TestQosMismatch(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.ros = RosHarness()
        cls.ros.camera(CAMERA, rate_hz=5.0, qos=BEST_EFFORT)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.ros.close()

    def test_edge_names_topic_and_qos_mismatch(self, proc_output) -> None:
        proc_output.assertWaitFor(
            f"no frame on {CAMERA} (sensor_msgs/msg/Image, QoS reliable, volatile, keep_last 1)", timeout=120
        )
        proc_output.assertWaitFor("QoS mismatch: the subscription asks for reliable", timeout=30)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_processes_exit_cleanly(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])

"""Launch test: edge + bridge (launch/edge.launch.py) while the LVLM server dies and comes back.

The server runs as a separate ``ros2 run`` process the test kills (SIGKILL, like a crash) and restarts:
the edge must keep answering at its rate without the server, and the bridge must send keyframes again
and publish new context once the server is back. Skips without ROS.
"""

from __future__ import annotations

import os
import signal
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
from launch.actions import IncludeLaunchDescription, SetEnvironmentVariable
from launch.launch_description_sources import PythonLaunchDescriptionSource
from ros_fixtures import LATCHED, NODE_ENV, RosHarness, tiny_params

from launch import LaunchDescription
from spotvlm_msgs.msg import EdgeAnswer, LvlmContext

CAMERA = "/fixture/image_raw"
STARTUP_S = 180.0
WINDOW_S = 8.0
PARAMS = tiny_params(Path(tempfile.mkdtemp(prefix="spotvlm-restart-")) / "params.yaml")


@pytest.mark.launch_test
def generate_test_description() -> LaunchDescription:
    launch_file = os.path.join(get_package_share_directory("spotvlm_ros"), "launch", "edge.launch.py")
    arguments = {"params_file": str(PARAMS), "camera_topic": CAMERA}
    return LaunchDescription(
        [
            *(SetEnvironmentVariable(k, v) for k, v in NODE_ENV.items()),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(launch_file), launch_arguments=arguments.items()
            ),
            launch_testing.actions.ReadyToTest(),
        ]
    )


def start_server() -> subprocess.Popen:
    command = [
        "ros2",
        "run",
        "spotvlm_ros",
        "spotvlm_lvlm_server",
        "--ros-args",
        "--params-file",
        str(PARAMS),
    ]
    return subprocess.Popen(command, env={**os.environ, **NODE_ENV}, start_new_session=True)


def kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


class TestServerRestart(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.ros = RosHarness()
        cls.answers = cls.ros.collect(EdgeAnswer, "/spotvlm_edge/answer")
        cls.contexts = cls.ros.collect(LvlmContext, "/context", LATCHED)
        cls.ros.camera(CAMERA, rate_hz=5.0)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.ros.close()

    def answer_rate(self) -> float:
        start = time.monotonic()
        time.sleep(WINDOW_S)
        return len(self.answers.since(start)) / WINDOW_S

    def test_edge_keeps_its_rate_and_the_bridge_recovers(self) -> None:
        server = start_server()
        try:
            self.assertTrue(
                self.contexts.wait(lambda m: len(m) >= 1, STARTUP_S), "no context from the server"
            )
            before = self.answer_rate()
            self.assertGreater(before, 0.5, "the edge is not answering")
            kill(server)
            during = self.answer_rate()
            self.assertGreaterEqual(
                during, 0.7 * before, f"edge rate fell from {before:.2f} to {during:.2f} Hz"
            )
            seen = len(self.contexts.messages)
            time.sleep(2.0)
            self.assertLessEqual(len(self.contexts.messages), seen + 1)  # at most one result was on its way
            seen = len(self.contexts.messages)
            server = start_server()
            self.assertTrue(
                self.contexts.wait(lambda m: len(m) > seen, STARTUP_S),
                "no new context after the server restart",
            )
            ids = [int(c.request_id.rsplit("-", 1)[1]) for c in self.contexts.messages]
            self.assertEqual(ids, sorted(ids))
        finally:
            kill(server)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_nodes_exit_cleanly(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])

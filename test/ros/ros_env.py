"""Whether the ROS 2 tests can run here; never raises (the tests skip with :data:`ROS_MISSING`)."""

from __future__ import annotations

import importlib.util
import os
import shutil


def importable(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _missing() -> str:
    for module, what in (
        ("rclpy", "ROS 2 (rclpy)"),
        ("launch_testing", "launch_testing"),
        ("rosidl_runtime_py", "rosidl_runtime_py"),
        ("diagnostic_updater", "diagnostic_updater"),
    ):
        if not importable(module):
            return f"{what} not importable: source a ROS 2 Humble/Jazzy setup.bash (README 'Run on a robot')"
    if not importable("spotvlm_msgs"):
        return "spotvlm_msgs not built: colcon build both packages and source install/setup.bash"
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        get_package_share_directory("spotvlm_ros")
    except (ImportError, PackageNotFoundError):
        return "spotvlm_ros is not installed in the sourced ROS workspace (colcon build it, then source)"
    if shutil.which("ros2") is None:
        return "the ros2 command is not on PATH"
    if not os.environ.get("AMENT_PREFIX_PATH"):
        return "AMENT_PREFIX_PATH is not set: source install/setup.bash"
    return ""


def _launch_testing_missing() -> str:
    """Why launch_testing's pytest plugin cannot run these tests ("" when it can)."""
    import inspect

    import pytest

    try:
        from launch_testing.pytest import hooks
    except ImportError as err:
        return f"launch_testing's pytest plugin not importable: {err}"
    legacy = "path" in inspect.signature(hooks.pytest_pycollect_makemodule).parameters
    if legacy and int(pytest.__version__.split(".")[0]) >= 9:
        return f"this launch_testing's pytest plugin needs pytest < 9 (found {pytest.__version__})"
    return ""


ROS_MISSING = _missing()
LAUNCH_TESTING_MISSING = ROS_MISSING or _launch_testing_missing()

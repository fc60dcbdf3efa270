"""``colcon build`` of both packages and ``ros2 interface show`` of every interface (skips without ROS)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ros_env import ROS_MISSING

if ROS_MISSING:
    pytest.skip(ROS_MISSING, allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
INTERFACES = {
    "spotvlm_msgs/msg/LvlmContext": [
        "std_msgs/Header header",
        "string request_id",
        "regions",
        "round_trip_s",
        "string[] camera_frame_ids",
        "uint32[] camera_widths",
    ],
    "spotvlm_msgs/msg/EdgeAnswer": [
        "std_msgs/Header header",
        "string context_id",
        "focus_regions",
        "skipped_frames",
    ],
    "spotvlm_msgs/action/QueryLVLM": [
        "sensor_msgs/CompressedImage image",
        "sensor_msgs/CompressedImage[] more_images",
        "bool want_regions",
        "partial_text",
    ],
}


def run(command: str, cwd: Path | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


@pytest.mark.parametrize("name", sorted(INTERFACES))
def test_interface_show(name):
    proc = run(f"ros2 interface show {name}")
    assert proc.returncode == 0, proc.stderr
    for line in INTERFACES[name]:
        assert line in proc.stdout, f"{line!r} missing from ros2 interface show {name}"


def test_package_executables():
    proc = run("ros2 pkg executables spotvlm_ros")
    assert proc.returncode == 0, proc.stderr
    for executable in ("spotvlm_edge", "spotvlm_bridge", "spotvlm_lvlm_server"):
        assert f"spotvlm_ros {executable}" in proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("colcon") is None, reason="colcon not on PATH")
def test_colcon_build_of_both_packages(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "spotvlm").symlink_to(REPO)
    build = run(
        "colcon build --base-paths src/spotvlm src/spotvlm/spotvlm_msgs --event-handlers console_direct-",
        cwd=tmp_path,
        timeout=900.0,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    assert "2 packages finished" in build.stdout + build.stderr
    shown = run(f"source {tmp_path}/install/setup.bash && ros2 interface show spotvlm_msgs/action/QueryLVLM")
    assert shown.returncode == 0 and "partial_text" in shown.stdout, shown.stderr

"""package.xml files are valid format-3 manifests with the dependencies ROS users rely on."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from catkin_pkg.package import parse_package
from time_scale import scaled

ROOT_DEPENDS = {
    "rclpy",
    "std_msgs",
    "sensor_msgs",
    "vision_msgs",
    "visualization_msgs",
    "diagnostic_msgs",
    "builtin_interfaces",
    "cv_bridge",
    "launch",
    "launch_ros",
    "spotvlm_msgs",
    "python3-numpy",
    "python3-opencv",
}
ROOT_TEST_DEPENDS = {
    "launch_testing",
    "launch_testing_ros",
    "python3-pytest",
    "ament_flake8",
    "ament_pep257",
    "ament_copyright",
}


def _names(deps) -> set[str]:
    return {d.name for d in deps}


def test_root_package_manifest(repo_root):
    pkg = parse_package(repo_root / "package.xml")
    pkg.validate()
    assert pkg.package_format == 3
    assert pkg.name == "spotvlm_ros"
    assert pkg.get_build_type() == "ament_python"
    runtime = _names(pkg.exec_depends) | _names(pkg.build_depends)
    assert runtime >= ROOT_DEPENDS, ROOT_DEPENDS - runtime
    assert _names(pkg.test_depends) >= ROOT_TEST_DEPENDS


def test_interface_package_manifest(repo_root):
    pkg = parse_package(repo_root / "spotvlm_msgs" / "package.xml")
    pkg.validate()
    assert pkg.package_format == 3
    assert pkg.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in {g.name for g in pkg.member_of_groups}
    assert {"std_msgs", "sensor_msgs", "vision_msgs"} <= _names(pkg.build_depends)
    assert "rosidl_default_generators" in _names(pkg.buildtool_depends)
    cmake = (repo_root / "spotvlm_msgs" / "CMakeLists.txt").read_text()
    for path in sorted((repo_root / "spotvlm_msgs").glob("*/*.*msg")) + sorted(
        (repo_root / "spotvlm_msgs").glob("action/*.action")
    ):
        assert f'"{path.parent.name}/{path.name}"' in cmake, (
            f"{path.name} missing from rosidl_generate_interfaces"
        )


def test_setup_installs_ament_marker_and_scripts(repo_root):
    setup_py = (repo_root / "setup.py").read_text()
    assert (repo_root / "resource" / "spotvlm_ros").is_file()
    for script in ("spotvlm_edge", "spotvlm_bridge", "spotvlm_lvlm_server", "spotvlm ="):
        assert script in setup_py
    assert "script_dir=$base/lib/spotvlm_ros" in (repo_root / "setup.cfg").read_text()


@pytest.mark.skipif(
    shutil.which("colcon") is None, reason="colcon not installed (apt install colcon python3-colcon-ros)"
)
def test_colcon_finds_both_packages_with_both_paths(repo_root):
    out = subprocess.run(
        ["colcon", "list", "--base-paths", ".", "spotvlm_msgs"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True,
        timeout=scaled(60),
    ).stdout
    found = {line.split()[0]: line.split()[2] for line in out.splitlines() if line.strip()}
    assert found.get("spotvlm_ros") == "(ros.ament_python)", out
    assert found.get("spotvlm_msgs") == "(ros.ament_cmake)", out

"""Base launch of SpotVLM: the three nodes and rviz2, each switched by an argument.

Every other launch file includes this one and fixes which nodes run; the user-facing arguments are
declared here once: namespace, params_file, camera_topic, camera_topics (several cameras, e.g.
``camera_topics:=[/cam_front/image_raw, /cam_left/image_raw]``, synchronized by stamp), image_transport
(raw/compressed), models (params: the parameter file's; demo: the shipped trained models),
use_sim_time, log_level, rviz and rviz_config (empty: a layout written for the cameras in use).
"""

import tempfile
from pathlib import Path

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from spotvlm_ros.runtime.launch_setup import (
    camera_parameters,
    model_parameters,
    parse_topic_list,
    rviz_config,
)

PACKAGE = "spotvlm_ros"
NODES = {"edge": "spotvlm_edge", "bridge": "spotvlm_bridge", "server": "spotvlm_lvlm_server"}
ARGUMENTS = {
    "namespace": ("", "Namespace of all nodes, topics and the action"),
    "params_file": (
        PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "spotvlm.yaml"]),
        "ROS parameter file (/**: ros__parameters:), validated by the SpotVLM config schema",
    ),
    "camera_topic": ("/camera/image_raw", "Camera image topic (compressed transport adds /compressed)"),
    "camera_topics": (
        "",
        "Several cameras, e.g. [/cam_front/image_raw, /cam_left/image_raw]; replaces camera_topic",
    ),
    "image_transport": ("raw", "raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage)"),
    "models": ("params", "params (the parameter file's models) or demo (the shipped trained demo models)"),
    "use_sim_time": ("false", "Use /clock (bag replay)"),
    "log_level": ("info", "Log level of the nodes: debug, info, warn, error"),
    "rviz": ("false", "Start rviz2 with a layout of every camera and its focus image"),
    "rviz_config": ("", "rviz2 config file; empty = a layout written for the cameras in use"),
    "edge": ("true", "Run spotvlm_edge"),
    "bridge": ("true", "Run spotvlm_bridge"),
    "server": ("true", "Run spotvlm_lvlm_server"),
}


def _text(context, name: str) -> str:
    return LaunchConfiguration(name).perform(context)


def spotvlm_node(key: str, overrides: dict) -> Node:
    """One SpotVLM node with the shared parameters and launch arguments."""
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    return Node(
        package=PACKAGE,
        executable=NODES[key],
        name=NODES[key],
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), {**overrides, "use_sim_time": use_sim_time}],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
        condition=IfCondition(LaunchConfiguration(key)),
    )


def _setup(context) -> list:
    """The nodes and rviz2 for the evaluated arguments (camera list, transport, models)."""
    topics = parse_topic_list(_text(context, "camera_topics"))
    transport = _text(context, "image_transport")
    overrides = {
        **camera_parameters(_text(context, "camera_topic"), topics, transport),
        **model_parameters(_text(context, "models")),
    }
    layout = _text(context, "rviz_config")
    if not layout:
        cameras = topics or [_text(context, "camera_topic")]
        path = Path(tempfile.mkdtemp(prefix="spotvlm-rviz-")) / "spotvlm.rviz"
        path.write_text(rviz_config(cameras, transport, _text(context, "namespace")))
        layout = str(path)
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", layout],
        parameters=[{"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return [*(spotvlm_node(key, overrides) for key in NODES), rviz]


def generate_launch_description() -> LaunchDescription:
    """Arguments, then the three nodes and rviz2 (built once the arguments are known)."""
    arguments = [
        DeclareLaunchArgument(name, default_value=default, description=text)
        for name, (default, text) in ARGUMENTS.items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_setup)])

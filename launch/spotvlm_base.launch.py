"""Base launch of SpotVLM: the three nodes and rviz2, each switched by an argument.

Every other launch file includes this one and fixes which nodes run; the user-facing arguments are
declared here once: namespace, params_file, camera_topic, image_transport (raw/compressed),
use_sim_time, log_level and rviz.
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "spotvlm_ros"
NODES = {"edge": "spotvlm_edge", "bridge": "spotvlm_bridge", "server": "spotvlm_lvlm_server"}
ARGUMENTS = {
    "namespace": ("", "Namespace of all nodes, topics and the action"),
    "params_file": (
        PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "spotvlm.yaml"]),
        "ROS parameter file (/**: ros__parameters:), validated by the SpotVLM config schema",
    ),
    "camera_topic": ("/camera/image_raw", "Camera image topic (compressed transport adds /compressed)"),
    "image_transport": ("raw", "raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage)"),
    "use_sim_time": ("false", "Use /clock (bag replay)"),
    "log_level": ("info", "Log level of the nodes: debug, info, warn, error"),
    "rviz": ("false", "Start rviz2 with config/spotvlm.rviz"),
    "edge": ("true", "Run spotvlm_edge"),
    "bridge": ("true", "Run spotvlm_bridge"),
    "server": ("true", "Run spotvlm_lvlm_server"),
}


def spotvlm_node(key: str) -> Node:
    """One SpotVLM node with the shared parameters and launch arguments."""
    overrides = {
        "camera.topic": ParameterValue(LaunchConfiguration("camera_topic"), value_type=str),
        "camera.transport": ParameterValue(LaunchConfiguration("image_transport"), value_type=str),
        "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
    }
    return Node(
        package=PACKAGE,
        executable=NODES[key],
        name=NODES[key],
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
        condition=IfCondition(LaunchConfiguration(key)),
    )


def generate_launch_description() -> LaunchDescription:
    """Arguments, the three nodes and rviz2."""
    arguments = [
        DeclareLaunchArgument(name, default_value=default, description=text)
        for name, (default, text) in ARGUMENTS.items()
    ]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "spotvlm.rviz"])],
        parameters=[{"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, *(spotvlm_node(key) for key in NODES), rviz])

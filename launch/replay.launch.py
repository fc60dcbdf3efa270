"""SpotVLM on a recorded bag: ``ros2 bag play --clock`` beside all three nodes on sim time, and rviz2.

Arguments: bag (default: the shipped demo bag), rate, and every argument of spotvlm_base.launch.py;
here image_transport defaults to compressed, rviz to true and models to demo (the shipped trained demo
models, so the answers drawn on the focus images mean something; models:=params runs the parameter
file's). A bag of several cameras (e.g. one imported from DriveLM/nuScenes) needs their topics:
``camera_topics:=[/CAM_FRONT/image_raw, /CAM_BACK/image_raw, ...]``. The latched context of a SpotVLM
output bag (/spotvlm/context) replays as TRANSIENT_LOCAL through config/qos_overrides.yaml.
"""

from pathlib import Path

from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

BASE = str(Path(__file__).with_name("spotvlm_base.launch.py"))
SHARE = FindPackageShare("spotvlm_ros")


def generate_launch_description() -> LaunchDescription:
    """Bag player with /clock, the nodes on use_sim_time, rviz2."""
    arguments = [
        DeclareLaunchArgument(
            "bag",
            default_value=PathJoinSubstitution([SHARE, "rosbags", "demo"]),
            description="rosbag2 directory",
        ),
        DeclareLaunchArgument("rate", default_value="1.0", description="Playback rate"),
        DeclareLaunchArgument("image_transport", default_value="compressed", description="raw or compressed"),
        DeclareLaunchArgument("rviz", default_value="true", description="Start rviz2"),
        DeclareLaunchArgument("models", default_value="demo", description="demo (shipped trained) or params"),
    ]
    play = ExecuteProcess(
        cmd=[
            "ros2", "bag", "play", LaunchConfiguration("bag"), "--clock",
            "--rate", LaunchConfiguration("rate"),
            "--qos-profile-overrides-path", PathJoinSubstitution([SHARE, "config", "qos_overrides.yaml"]),
        ],
        output="screen",
    )  # fmt: skip
    nodes = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(BASE),
        launch_arguments={
            "use_sim_time": "true",
            "image_transport": LaunchConfiguration("image_transport"),
            "rviz": LaunchConfiguration("rviz"),
            "models": LaunchConfiguration("models"),
        }.items(),
    )
    return LaunchDescription([*arguments, nodes, play])

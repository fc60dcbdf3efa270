"""SpotVLM on the robot: edge + bridge (the LVLM server runs elsewhere).

Every argument of spotvlm_base.launch.py applies.
"""

from pathlib import Path

from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

from launch import LaunchDescription

BASE = str(Path(__file__).with_name("spotvlm_base.launch.py"))


def generate_launch_description() -> LaunchDescription:
    """The base launch with edge=true, bridge=true, server=false."""
    nodes = {"edge": "true", "bridge": "true", "server": "false"}
    return LaunchDescription(
        [IncludeLaunchDescription(PythonLaunchDescriptionSource(BASE), launch_arguments=nodes.items())]
    )

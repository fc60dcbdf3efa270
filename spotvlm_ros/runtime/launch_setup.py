"""What the launch files compute from their arguments, without ROS: camera parameters, models, rviz.

``launch/spotvlm_base.launch.py`` calls these from an ``OpaqueFunction``: :func:`parse_topic_list`
reads ``camera_topics:=[/a, /b]``, :func:`camera_parameters` turns the camera arguments into node
parameters, :func:`model_parameters` selects the shipped demo models, and :func:`rviz_config` writes
the rviz2 layout for the cameras in use: every camera's focus image large, every camera below them
(dock sizes in the window state of :mod:`.rviz_window`).
rviz2 picks the image transport from the topic name, so a compressed camera is shown by its
``.../compressed`` topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from ..core.camera_groups import camera_names
from ..core.config import MAX_CAMERAS
from .rviz_window import window_state

MODEL_SETS = ("params", "demo")
"""``models:=params`` keeps the parameter file's models; ``models:=demo`` runs the shipped trained ones."""

EDGE_NODE = "spotvlm_edge"
WINDOW = (1920, 1080)


def parse_topic_list(text: str) -> list[str]:
    """The topics of ``camera_topics:=...``: a YAML list (``[/a, /b]``), or comma separated; "" = none."""
    text = text.strip()
    if not text:
        return []
    try:
        value = yaml.safe_load(text) if text.startswith("[") else [t.strip() for t in text.split(",")]
    except yaml.YAMLError as err:
        raise ValueError(f"camera_topics:={text!r} is not a list of topics: {err}") from None
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        raise ValueError(
            f"camera_topics:={text!r}: expected topic names, e.g. camera_topics:=[/cam1/image, /cam2/image]"
        )
    if len(value) > MAX_CAMERAS:
        raise ValueError(f"camera_topics:={text!r}: at most {MAX_CAMERAS} cameras")
    return [t.strip() for t in value]


def camera_parameters(camera_topic: str, camera_topics: Sequence[str], transport: str) -> dict[str, Any]:
    """Node parameters of the camera arguments: several topics replace the single ``camera_topic``."""
    if transport not in ("raw", "compressed"):
        raise ValueError(f"image_transport:={transport!r}: expected raw or compressed")
    params: dict[str, Any] = {"camera.transport": transport}
    if len(camera_topics) > 1:
        params.update({"camera.topic": "", "camera.topics": list(camera_topics)})
    else:
        params["camera.topic"] = camera_topics[0] if camera_topics else camera_topic
    return params


def model_parameters(models: str) -> dict[str, Any]:
    """Node parameters of ``models:=...``.

    ``params``: nothing; ``demo``: the shipped demo models and the settings they were trained under
    (ValueError when they are not installed).
    """
    if models not in MODEL_SETS:
        raise ValueError(f"models:={models!r}: expected one of {', '.join(MODEL_SETS)}")
    if models == "params":
        return {}
    from ..training.scenario import SCENARIO_SETTINGS, trained_model_settings

    trained = trained_model_settings()
    if trained is None:
        raise ValueError("models:=demo: the trained demo models (spotvlm_ros/demo_models) are not installed")
    settings = {k: v for k, v in SCENARIO_SETTINGS.items() if not k.endswith("step_time_s")}
    return {**settings, **trained}


def _subscribed(topic: str, transport: str) -> str:
    if transport == "compressed" and not topic.endswith("/compressed"):
        return f"{topic}/compressed"
    return topic


def _absolute(topic: str, namespace: str) -> str:
    if topic.startswith("/"):
        return topic
    prefix = f"/{namespace.strip('/')}" if namespace.strip("/") else ""
    return f"{prefix}/{topic}"


def _image_display(name: str, topic: str, reliable: bool) -> dict[str, Any]:
    return {
        "Class": "rviz_default_plugins/Image",
        "Enabled": True,
        "Name": name,
        "Max Value": 1,
        "Min Value": 0,
        "Median window": 5,
        "Normalize Range": True,
        "Topic": {
            "Depth": 1,
            "Durability Policy": "Volatile",
            "History Policy": "Keep Last",
            "Reliability Policy": "Reliable" if reliable else "Best Effort",
            "Value": topic,
        },
        "Value": True,
    }


def rviz_config(camera_topics: Sequence[str], transport: str, namespace: str = "") -> str:
    """The rviz2 layout (YAML text) for these cameras: each camera's focus image, then each camera."""
    topics = [_absolute(_subscribed(t, transport), namespace) for t in camera_topics]
    edge = _absolute(f"{EDGE_NODE}/focus_image", namespace)
    several = len(topics) > 1
    names = camera_names(topics) if several else ["camera"]
    focus = [
        _image_display(
            f"Focus {name}" if several else "Focus image and answer",
            f"{edge}/{name}" if several else edge,
            True,
        )
        for name in names
    ]
    cameras = [
        _image_display(f"Camera {name}" if several else "Camera", topic, False)
        for name, topic in zip(names, topics, strict=True)
    ]
    displays = focus + cameras
    if several:
        rows = [([d["Name"] for d in focus[i : i + 3]], 1.0) for i in range(0, len(focus), 3)]
        rows += [([d["Name"] for d in cameras[i : i + 6]], 0.5) for i in range(0, len(cameras), 6)]
    else:
        rows = [([focus[0]["Name"]], 0.68), ([cameras[0]["Name"]], 0.32)]
    layout = {
        "Panels": [
            {
                "Class": "rviz_common/Displays",
                "Name": "Displays",
                "Property Tree Widget": {"Expanded": [], "Splitter Ratio": 0.5},
            }
        ],
        "Visualization Manager": {
            "Class": "",
            "Displays": displays,
            "Enabled": True,
            "Global Options": {"Background Color": "48; 48; 48", "Fixed Frame": "camera", "Frame Rate": 30},
            "Name": "root",
            "Tools": [{"Class": "rviz_default_plugins/Interact"}],
            "Value": True,
            "Views": {
                "Current": {"Class": "rviz_default_plugins/Orbit", "Name": "Current View"},
                "Saved": None,
            },
        },
        "Window Geometry": {
            **{d["Name"]: {"collapsed": False} for d in displays},
            "Displays": {"collapsed": False},
            "Height": WINDOW[1],
            "Width": WINDOW[0],
            "X": 0,
            "Y": 0,
            "Hide Left Dock": False,
            "Hide Right Dock": False,
            "QMainWindow State": window_state(rows, ["Displays"], WINDOW),
        },
    }
    header = (
        "# rviz2 layout of SpotVLM (spotvlm_ros.runtime.launch_setup.rviz_config): the edge's focus image\n"
        "# of every camera (answer text, context used and its age, focus regions amber, answer regions\n"
        "# green) large in the left dock area, every camera below them, the display list on the right and\n"
        "# a narrow strip for the (unused) 3D view. The dock layout is the QMainWindow State (rviz_window).\n"
    )
    return header + yaml.safe_dump(layout, sort_keys=False, width=100)

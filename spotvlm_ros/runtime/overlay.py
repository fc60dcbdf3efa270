"""What a viewer shows of an edge answer: an annotated image and ``visualization_msgs/ImageMarker``s.

``annotate`` draws (with OpenCV, on a copy) the focus regions, the answer's own regions, the answer
text and a status line with the context used and its age. ``answer_markers`` gives the same boxes as
ImageMarker dicts in ROS layout (``runtime.typestore.build_message`` or rclpy fill them), which
Foxglove's image panel and ``image_view`` draw over the camera image.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from ..core.messages import header
from ..core.types import CONTEXT_USED, NS_PER_S, EdgeAnswer, Region

RGB = tuple[int, int, int]
FOCUS_COLOR: RGB = (255, 200, 0)  # amber: regions carried over from the LVLM
ANSWER_COLOR: RGB = (0, 220, 80)  # green: regions the SVLM answered with
TEXT_COLOR: RGB = (255, 255, 255)
STALE_COLOR: RGB = (255, 90, 60)
FOCUS_IMAGE_TOPIC = "/spotvlm/focus_image"
"""Focus image topic of an output bag (``runtime.bag_writer``); one sub-topic per camera of several."""
MARKER_LINE_STRIP = 1
MARKER_POLYGON = 3
MARKER_ADD = 0
MARKER_REMOVE = 1
MAX_TEXT_LINES = 3
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def focus_image_topic(camera_name: str, base: str = FOCUS_IMAGE_TOPIC) -> str:
    """The focus image topic of one camera of several, e.g. ``/spotvlm/focus_image/CAM_FRONT``."""
    return f"{base}/{camera_name}"


def answer_detections(answer: EdgeAnswer) -> tuple[Region, ...]:
    """Regions published as ``Detection2DArray``: the answer's own, else the focus regions used."""
    return answer.regions or answer.focus_regions


def camera_answer(answer: EdgeAnswer, frame_id: str, reference: str) -> EdgeAnswer:
    """``answer`` as one camera of a group shows it: only the regions in camera ``frame_id``.

    Regions that name no camera are the ``reference`` camera's.
    """
    return replace(
        answer,
        frame_id=frame_id,
        regions=tuple(r for r in answer.regions if r.camera(reference) == frame_id),
        focus_regions=tuple(r for r in answer.focus_regions if r.camera(reference) == frame_id),
    )


def context_label(answer: EdgeAnswer) -> str:
    """One line about the context behind an answer, e.g. ``context bridge-3, age 1.4 s``."""
    if answer.context_id:
        return f"context {answer.context_id}, age {answer.context_age_s:.1f} s"
    return f"no context ({answer.context_status or 'none'})"


def _ascii(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only."""
    return text.encode("ascii", "replace").decode("ascii")


def _draw_region(image: np.ndarray, region: Region, color: RGB, thickness: int, scale: float) -> None:
    height, width = image.shape[:2]
    box = region.box.clip(width, height)
    if not box.is_valid(min_size=0.0):
        return
    p1 = (int(round(box.x1)), int(round(box.y1)))
    p2 = (int(round(box.x2)), int(round(box.y2)))
    cv2.rectangle(image, p1, p2, color, thickness, cv2.LINE_AA)
    label = _ascii(f"{region.label} {region.score:.2f}".strip())
    (tw, th), base = cv2.getTextSize(label, _FONT, scale, 1)
    top = max(p1[1] - th - base - 2, 0)
    cv2.rectangle(image, (p1[0], top), (p1[0] + tw + 4, top + th + base + 2), color, -1)
    cv2.putText(image, label, (p1[0] + 2, top + th + 1), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _draw_banner(image: np.ndarray, lines: list[str], scale: float, bottom: bool, color: RGB) -> None:
    if not lines:
        return
    height, width = image.shape[:2]
    (_, th), base = cv2.getTextSize("Ag", _FONT, scale, 1)
    line_h = th + base + 4
    box_h = line_h * len(lines) + 4
    y0 = height - box_h if bottom else 0
    band = image[max(y0, 0) : y0 + box_h]
    band[:] = (band * 0.4).astype(np.uint8)  # darken behind the text
    for i, line in enumerate(lines):
        y = y0 + 2 + line_h * i + th + 2
        cv2.putText(image, line, (4, y), _FONT, scale, color, 1, cv2.LINE_AA)


def annotate(image: np.ndarray, answer: EdgeAnswer | None, note: str = "") -> np.ndarray:
    """A copy of ``image`` (RGB) with focus regions, answer regions, answer text and context age."""
    out = np.array(image, dtype=np.uint8, copy=True)
    height, width = out.shape[:2]
    scale = max(0.35, min(width, height) / 900.0)
    thickness = max(1, round(min(width, height) / 300))
    if answer is None:
        _draw_banner(out, [_ascii(note or "no answer yet")], scale, bottom=True, color=STALE_COLOR)
        return out
    for region in answer.focus_regions:
        _draw_region(out, region, FOCUS_COLOR, thickness, scale)
    for region in answer.regions:
        _draw_region(out, region, ANSWER_COLOR, thickness + 1, scale)
    chars = max(16, int(width / (20 * scale)))
    text_lines = textwrap.wrap(_ascii(f"{answer.task}: {answer.text}"), chars)[:MAX_TEXT_LINES]
    _draw_banner(out, text_lines, scale, bottom=False, color=TEXT_COLOR)
    status = f"{context_label(answer)} | focus {answer.focus_mode} | {answer.inference_s * 1000:.0f} ms"
    if note:
        status = f"{status} | {note}"
    color = TEXT_COLOR if answer.context_status == CONTEXT_USED or answer.context_id else STALE_COLOR
    _draw_banner(out, [_ascii(status)], scale, bottom=True, color=color)
    return out


def _color(rgb: RGB, alpha: float = 1.0) -> dict[str, float]:
    return {"r": rgb[0] / 255.0, "g": rgb[1] / 255.0, "b": rgb[2] / 255.0, "a": float(alpha)}


def _duration(seconds: float) -> dict[str, int]:
    sec, nanosec = divmod(int(round(seconds * NS_PER_S)), NS_PER_S)
    return {"sec": sec, "nanosec": nanosec}


def region_marker(
    region: Region, marker_id: int, stamp_ns: int, frame_id: str, ns: str, color: RGB, lifetime_s: float
) -> dict[str, Any]:
    """A ``visualization_msgs/ImageMarker`` (closed polygon) outlining one region (in its camera)."""
    box = region.box
    corners = [(box.x1, box.y1), (box.x2, box.y1), (box.x2, box.y2), (box.x1, box.y2)]
    return {
        "header": header(stamp_ns, region.camera(frame_id)),
        "ns": ns,
        "id": int(marker_id),
        "type": MARKER_POLYGON,
        "action": MARKER_ADD,
        "position": {"x": 0.0, "y": 0.0, "z": 0.0},
        "scale": 2.0,
        "outline_color": _color(color),
        "filled": 0,
        "fill_color": _color(color, 0.0),
        "lifetime": _duration(lifetime_s),
        "points": [{"x": float(x), "y": float(y), "z": 0.0} for x, y in corners],
        "outline_colors": [],
    }


def remove_marker(marker_id: int, stamp_ns: int, frame_id: str, ns: str) -> dict[str, Any]:
    """An ImageMarker REMOVE action for ``ns``/``marker_id``."""
    return {"header": header(stamp_ns, frame_id), "ns": ns, "id": int(marker_id), "action": MARKER_REMOVE}


def answer_markers(answer: EdgeAnswer, lifetime_s: float = 1.0) -> dict[str, list[dict[str, Any]]]:
    """ImageMarker dicts per namespace: ``focus`` (focus regions) and ``answer`` (answer regions)."""
    groups = {"focus": (answer.focus_regions, FOCUS_COLOR), "answer": (answer.regions, ANSWER_COLOR)}
    return {
        ns: [
            region_marker(r, i, answer.stamp_ns, answer.frame_id, ns, color, lifetime_s)
            for i, r in enumerate(regions)
        ]
        for ns, (regions, color) in groups.items()
    }

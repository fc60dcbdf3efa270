"""Conversions between domain types and ROS message layouts, as plain nested dicts.

The dicts have exactly the field names and nesting of the ROS 2 messages (``spotvlm_msgs``,
``vision_msgs``, ``std_msgs``), so the same code serves three consumers: rosbags message objects
(``runtime.typestore``), rclpy messages (``rosidl_runtime_py.set_message_fields`` in the nodes) and
JSON records. Nothing here imports ROS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from .types import NS_PER_S, Box, EdgeAnswer, LvlmResult, Region

Msg = dict[str, Any]


def header(stamp_ns: int, frame_id: str) -> Msg:
    """``std_msgs/Header`` for a stamp in nanoseconds."""
    if stamp_ns < 0:
        raise ValueError(f"stamp must be >= 0 ns, got {stamp_ns}")
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": frame_id}


def header_stamp_ns(msg_header: Msg) -> int:
    """Nanoseconds of a ``std_msgs/Header`` dict."""
    stamp = msg_header["stamp"]
    return int(stamp["sec"]) * NS_PER_S + int(stamp["nanosec"])


def _zero_pose_with_covariance() -> Msg:
    return {
        "pose": {
            "position": {"x": 0.0, "y": 0.0, "z": 0.0},
            "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0},
        },
        "covariance": [0.0] * 36,
    }


def region_to_detection(region: Region, stamp_ns: int, frame_id: str, det_id: str = "") -> Msg:
    """``vision_msgs/Detection2D`` (center/size box, label as class_id, score) for a region.

    The detection's header names the region's camera (``frame_id`` when the region names none).
    """
    cx, cy = region.box.center
    return {
        "header": header(stamp_ns, region.camera(frame_id)),
        "results": [
            {
                "hypothesis": {"class_id": region.label, "score": float(region.score)},
                "pose": _zero_pose_with_covariance(),
            }
        ],
        "bbox": {
            "center": {"position": {"x": float(cx), "y": float(cy)}, "theta": 0.0},
            "size_x": float(region.box.width),
            "size_y": float(region.box.height),
        },
        "id": det_id,
    }


def detection_to_region(det: Msg) -> Region:
    """Inverse of :func:`region_to_detection`; raises ValueError on a non-finite or negative box."""
    bbox = det["bbox"]
    pos = bbox["center"]["position"]
    w, h = float(bbox["size_x"]), float(bbox["size_y"])
    values = (float(pos["x"]), float(pos["y"]), w, h)
    if not all(math.isfinite(v) for v in values) or w < 0 or h < 0:
        raise ValueError(f"invalid detection box center=({pos['x']}, {pos['y']}) size=({w}, {h})")
    results = det.get("results") or []
    label, score = ("", 1.0)
    if results:
        hyp = results[0]["hypothesis"]
        label, score = str(hyp["class_id"]), float(hyp["score"])
    return Region(Box.from_center(values[0], values[1], w, h), label, score)


def regions_to_detection_array(regions: tuple[Region, ...], stamp_ns: int, frame_id: str) -> Msg:
    """``vision_msgs/Detection2DArray`` for regions of one image or of several cameras.

    Each detection's header names its region's camera.
    """
    return {
        "header": header(stamp_ns, frame_id),
        "detections": [
            region_to_detection(r, stamp_ns, frame_id, det_id=str(i)) for i, r in enumerate(regions)
        ],
    }


def detection_array_to_regions(array: Msg) -> tuple[Region, ...]:
    """Regions of a Detection2DArray.

    A detection whose header names another camera than the array's gives a region of that camera.
    """
    default = str(_get(_get(array, "header", {}), "frame_id", ""))
    regions = []
    for det in array["detections"]:
        region = detection_to_region(det)
        camera = str(_get(_get(det, "header", {}), "frame_id", ""))
        regions.append(replace(region, frame_id=camera) if camera and camera != default else region)
    return tuple(regions)


def _get(msg: Any, key: str, default: Any) -> Any:
    return msg.get(key, default) if isinstance(msg, Mapping) else default


def lvlm_result_to_msg(result: LvlmResult) -> Msg:
    """``spotvlm_msgs/LvlmContext`` for an LVLM result."""
    return {
        "header": header(result.stamp_ns, result.frame_id),
        "request_id": result.request_id,
        "task": result.task,
        "prompt": result.prompt,
        "text": result.text,
        "summary": result.summary,
        "regions": regions_to_detection_array(result.regions, result.stamp_ns, result.frame_id),
        "image_width": int(result.image_size[0]),
        "image_height": int(result.image_size[1]),
        "model": result.model,
        "round_trip_s": float(result.round_trip_s),
        "camera_frame_ids": [name for name, _, _ in result.camera_sizes],
        "camera_widths": [int(w) for _, w, _ in result.camera_sizes],
        "camera_heights": [int(h) for _, _, h in result.camera_sizes],
    }


def lvlm_result_from_msg(msg: Msg) -> LvlmResult:
    """Inverse of :func:`lvlm_result_to_msg`."""
    return LvlmResult(
        request_id=str(msg["request_id"]),
        stamp_ns=header_stamp_ns(msg["header"]),
        task=str(msg["task"]),
        prompt=str(msg["prompt"]),
        text=str(msg["text"]),
        regions=detection_array_to_regions(msg["regions"]),
        image_size=(int(msg["image_width"]), int(msg["image_height"])),
        summary=str(msg["summary"]),
        model=str(msg["model"]),
        round_trip_s=float(msg["round_trip_s"]),
        frame_id=str(msg["header"]["frame_id"]),
        camera_sizes=_camera_sizes(msg),
    )


def _camera_sizes(msg: Msg) -> tuple[tuple[str, int, int], ...]:
    """The (frame id, width, height) lists of an LvlmContext; ValueError when their lengths differ."""
    names = [str(n) for n in msg.get("camera_frame_ids", ()) or ()]
    widths = [int(w) for w in msg.get("camera_widths", ()) or ()]
    heights = [int(h) for h in msg.get("camera_heights", ()) or ()]
    if not len(names) == len(widths) == len(heights):
        raise ValueError(
            f"camera_frame_ids, camera_widths and camera_heights differ in length "
            f"({len(names)}, {len(widths)}, {len(heights)})"
        )
    return tuple(zip(names, widths, heights, strict=True))


def edge_answer_to_msg(answer: EdgeAnswer) -> Msg:
    """``spotvlm_msgs/EdgeAnswer`` for an edge answer."""
    return {
        "header": header(answer.stamp_ns, answer.frame_id),
        "task": answer.task,
        "text": answer.text,
        "regions": regions_to_detection_array(answer.regions, answer.stamp_ns, answer.frame_id),
        "context_id": answer.context_id,
        "context_age_s": float(answer.context_age_s),
        "context_status": answer.context_status,
        "focus_regions": regions_to_detection_array(answer.focus_regions, answer.stamp_ns, answer.frame_id),
        "focus_mode": answer.focus_mode,
        "inference_s": float(answer.inference_s),
        "prompt_tokens": int(answer.prompt_tokens),
        "image_tokens": int(answer.image_tokens),
        "skipped_frames": int(answer.skipped_frames),
    }


def edge_answer_from_msg(msg: Msg) -> EdgeAnswer:
    """Inverse of :func:`edge_answer_to_msg`."""
    return EdgeAnswer(
        stamp_ns=header_stamp_ns(msg["header"]),
        task=str(msg["task"]),
        text=str(msg["text"]),
        frame_id=str(msg["header"]["frame_id"]),
        regions=detection_array_to_regions(msg["regions"]),
        context_id=str(msg["context_id"]),
        context_age_s=float(msg["context_age_s"]),
        context_status=str(msg["context_status"]),
        focus_regions=detection_array_to_regions(msg["focus_regions"]),
        focus_mode=str(msg["focus_mode"]),
        inference_s=float(msg["inference_s"]),
        prompt_tokens=int(msg["prompt_tokens"]),
        image_tokens=int(msg["image_tokens"]),
        skipped_frames=int(msg["skipped_frames"]),
    )


def query_goal(
    jpeg: bytes,
    stamp_ns: int,
    frame_id: str,
    *,
    task: str,
    prompt: str,
    want_regions: bool,
    request_id: str,
    max_new_tokens: int = 0,
    image_format: str = "jpeg",
    more_images: Sequence[tuple[bytes, int, str]] = (),
) -> Msg:
    """``spotvlm_msgs/action/QueryLVLM`` goal for an encoded keyframe.

    ``more_images`` are the further cameras of a keyframe of several cameras: (encoded bytes, stamp,
    frame id) each.
    """
    return {
        "image": {"header": header(stamp_ns, frame_id), "format": image_format, "data": jpeg},
        "more_images": [
            {"header": header(stamp, name), "format": image_format, "data": data}
            for data, stamp, name in more_images
        ],
        "task": task,
        "prompt": prompt,
        "want_regions": bool(want_regions),
        "max_new_tokens": int(max_new_tokens),
        "request_id": request_id,
    }

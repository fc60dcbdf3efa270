"""Read DriveLM-nuScenes question-answer JSON into key frames with ground truth (no ROS, no images decoded).

The JSON (``train_sample.json``, the full ``v1_1_train_nus.json`` or the evaluation form
``test_eval.json``) is ``{scene_token: {scene_description, key_frames: {sample_token: {key_object_infos,
QA: {perception, prediction, planning, behavior: [{Q, A, tag?}]}, image_paths: {CAM_*:
"../nuscenes/samples/CAM_*/x.jpg"}}}}}``.

Each key frame becomes a :class:`KeyFrame`: one image per chosen camera (its path and its nuScenes timestamp,
the last ``__`` part of the file name, in microseconds) and a :class:`~spotvlm_ros.core.annotations.
FrameAnnotation`: every QA item with its group, its options when multiple-choice and the objects its answer
refers to (c tags ``<c1,CAM_FRONT,714.3,503.6>`` resolved through ``key_object_infos`` to camera and box),
one grounding item per key object (its description -> its box), and the scene description as caption.

Where the entry has no ``key_object_infos`` at all (the evaluation form), c tags keep their camera and
centre without a box; where it has them, a c tag missing from them is an error. Every error is a
:class:`DriveLmError` naming the entry.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..core.annotations import FrameAnnotation, GroundingItem, ObjectRef, VqaItem
from ..core.drivelm_metrics import C_TAG
from ..core.types import Box

CAMERAS = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
"""The six nuScenes camera channels, in the order the bag lists them."""
GROUPS = ("perception", "prediction", "planning", "behavior")
TAG_METRICS = {0: "accuracy", 1: "gpt", 2: "language", 3: "match"}
"""DriveLM's evaluation tags (``challenge/evaluation.py``) -> the metric family they select."""
OPTIONS_MARKER = "following options:"
HEADER_BYTES = 65536
"""Bytes of a JPEG read to find its frame header (the rest is read only when it is not there)."""


class DriveLmError(ValueError):
    """Bad DriveLM input; the message names the scene, key frame, camera or QA item."""


@dataclass(frozen=True)
class CameraImage:
    """One camera image of a key frame (or a sweep between key frames)."""

    camera: str
    path: Path
    stamp_ns: int
    width: int
    height: int


@dataclass(frozen=True)
class KeyFrame:
    """A DriveLM key frame: its camera images and its ground truth (stamped with the reference camera)."""

    scene: str
    sample: str
    images: tuple[CameraImage, ...]
    annotation: FrameAnnotation

    def image(self, camera: str) -> CameraImage | None:
        return next((i for i in self.images if i.camera == camera), None)


def load_qa_json(path: str | Path) -> dict[str, Any]:
    """The parsed QA file; DriveLmError when unreadable or not a JSON object of scenes."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise DriveLmError(f"{path}: cannot read: {err}") from None
    except json.JSONDecodeError as err:
        raise DriveLmError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, dict) or not data:
        raise DriveLmError(f"{path}: expected a JSON object of scenes {{scene_token: {{key_frames: ...}}}}")
    return data


def pick_cameras(names: Sequence[str]) -> tuple[str, ...]:
    """Validated camera names in the canonical order; all six when ``names`` is empty."""
    unknown = [n for n in names if n not in CAMERAS]
    if unknown:
        raise DriveLmError(f"unknown camera(s) {unknown}; nuScenes cameras: {', '.join(CAMERAS)}")
    return tuple(c for c in CAMERAS if c in names) if names else CAMERAS


def parse_key_frames(
    data: Mapping[str, Any], images_root: str | Path, cameras: Sequence[str] = CAMERAS
) -> list[KeyFrame]:
    """Every key frame of every scene, in time order within each scene (scenes in file order)."""
    root = Path(images_root)
    frames: list[KeyFrame] = []
    for scene, scene_data in data.items():
        where = f"scene {scene}"
        if not isinstance(scene_data, dict) or not isinstance(scene_data.get("key_frames"), dict):
            raise DriveLmError(f"{where}: needs an object 'key_frames'")
        caption = scene_data.get("scene_description") or ""
        if not isinstance(caption, str):
            raise DriveLmError(f"{where}: 'scene_description' must be text")
        parsed = [
            _key_frame(scene, sample, entry, caption, root, cameras)
            for sample, entry in scene_data["key_frames"].items()
        ]
        frames += sorted(parsed, key=lambda k: k.annotation.stamp_ns)
    return frames


def _key_frame(
    scene: str, sample: str, entry: Any, caption: str, root: Path, cameras: Sequence[str]
) -> KeyFrame:
    where = f"scene {scene} key frame {sample}"
    if not isinstance(entry, dict) or not isinstance(entry.get("QA"), dict):
        raise DriveLmError(f"{where}: needs an object 'QA'")
    paths = entry.get("image_paths")
    if not isinstance(paths, dict):
        raise DriveLmError(f"{where}: needs an object 'image_paths' {{CAM_*: path}}")
    for camera in paths:
        if camera not in CAMERAS:
            raise DriveLmError(f"{where}: unknown camera {camera!r} in image_paths")
    images = []
    for camera in cameras:
        if camera not in paths:
            raise DriveLmError(f"{where}: no image for camera {camera}")
        images.append(read_image_info(resolve_image(root, paths[camera], f"{where} {camera}"), camera, where))
    objects = _key_objects(entry, where)
    vqa = [
        _qa_item(group, index, qa, objects, f"{where} QA {group}[{index}]")
        for group in GROUPS
        for index, qa in enumerate(_group_items(entry["QA"], group, where))
    ]
    unknown_groups = sorted(set(entry["QA"]) - set(GROUPS))
    if unknown_groups:
        raise DriveLmError(f"{where}: unknown QA group(s) {unknown_groups}; groups: {', '.join(GROUPS)}")
    grounding = [
        GroundingItem(f"{sample}-{ref.id}", description, category, ref.box, ref.camera)
        for ref, (category, description) in (objects or {}).values()
        if ref.box is not None and ref.camera in cameras
    ]
    annotation = FrameAnnotation(
        stamp_ns=images[0].stamp_ns,
        vqa=tuple(vqa),
        caption=caption,
        grounding=tuple(grounding),
        sequence=scene,
        cameras=tuple((i.camera, i.stamp_ns) for i in images),
    )
    return KeyFrame(scene, sample, tuple(images), annotation)


def _group_items(qa: Mapping[str, Any], group: str, where: str) -> list[Any]:
    items = qa.get(group, [])
    if not isinstance(items, list):
        raise DriveLmError(f"{where}: QA {group} must be a list")
    return items


def resolve_image(root: Path, relative: Any, where: str) -> Path:
    """``root`` joined with an ``image_paths`` entry without its leading ``../``.

    When that is not found, also without a leading ``nuscenes/`` (``root`` = the nuScenes data root).
    """
    if not isinstance(relative, str) or not relative:
        raise DriveLmError(f"{where}: image path must be text, got {relative!r}")
    parts = [p for p in PurePosixPath(relative).parts if p not in ("..", ".")]
    candidates = [root.joinpath(*parts)]
    if parts and parts[0] == "nuscenes":
        candidates.append(root.joinpath(*parts[1:]))
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise DriveLmError(f"{where}: image not found: {candidates[0]} (from {relative!r})")
    return found


def file_stamp_ns(path: Path, where: str) -> tuple[str, int]:
    """(channel, stamp ns) from a nuScenes file name ``<log>__<CHANNEL>__<microseconds>.jpg``."""
    parts = path.stem.split("__")
    if len(parts) < 3 or not parts[-1].isdigit():
        raise DriveLmError(f"{where}: file name {path.name!r} is not <log>__<CHANNEL>__<microseconds>.jpg")
    return parts[-2], int(parts[-1]) * 1000


def read_image_info(path: Path, camera: str, where: str) -> CameraImage:
    """The image's camera, stamp and size, checked: a readable JPEG of that camera (not decoded)."""
    channel, stamp_ns = file_stamp_ns(path, f"{where} {camera}")
    if channel != camera:
        raise DriveLmError(f"{where} {camera}: image {path.name} is of camera {channel}")
    width, height = jpeg_size(path, f"{where} {camera}")
    return CameraImage(camera, path, stamp_ns, width, height)


def jpeg_size(path: Path, where: str) -> tuple[int, int]:
    """(width, height) from a JPEG's frame header, checked to end with its end-of-image marker.

    DriveLmError when unreadable, not a JPEG, or cut short; the image data is not decoded.
    """
    try:
        with path.open("rb") as stream:
            data = stream.read(HEADER_BYTES)
            size = _sof_size(data) if data[:2] == b"\xff\xd8" else None
            if size is None and len(data) == HEADER_BYTES:  # a long header (large EXIF): read on
                data += stream.read()
                size = _sof_size(data)
            stream.seek(max(0, stream.seek(0, 2) - 64))
            tail = stream.read().rstrip(b"\x00")
    except OSError as err:
        raise DriveLmError(f"{where}: cannot read image {path}: {err}") from None
    if data[:2] != b"\xff\xd8":
        raise DriveLmError(f"{where}: {path} is not a JPEG image")
    if size is None:
        raise DriveLmError(f"{where}: {path} is a truncated or corrupt JPEG (no frame header)")
    if not tail.endswith(b"\xff\xd9"):
        raise DriveLmError(f"{where}: {path} is a truncated JPEG (no end-of-image marker)")
    return size


def _sof_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return (width, height) if width and height else None
        pos += 2 + length
    return None


def _key_objects(entry: Mapping[str, Any], where: str) -> dict[str, tuple[ObjectRef, tuple[str, str]]] | None:
    """Objects by c tag: (object, (category, description)); None without key_object_infos."""
    infos = entry.get("key_object_infos")
    if infos is None:
        return None
    if not isinstance(infos, dict):
        raise DriveLmError(f"{where}: key_object_infos must be an object {{c tag: info}}")
    objects = {}
    for tag, info in infos.items():
        ref = _parse_tag(tag, f"{where} key_object_infos")
        if not isinstance(info, dict) or not isinstance(info.get("2d_bbox"), list):
            raise DriveLmError(f"{where} key object {tag}: needs '2d_bbox' [x1, y1, x2, y2]")
        try:
            box = Box(*(float(v) for v in info["2d_bbox"]))
        except (TypeError, ValueError):
            raise DriveLmError(f"{where} key object {tag}: bad 2d_bbox {info['2d_bbox']!r}") from None
        if not box.is_valid(min_size=0.0):
            raise DriveLmError(f"{where} key object {tag}: bad 2d_bbox {info['2d_bbox']!r}")
        category = str(info.get("Category") or "")
        description = str(info.get("Visual_description") or category or ref.id)
        objects[tag] = (
            ObjectRef(ref.tag, ref.id, ref.camera, ref.center, box),
            (category, description.strip()),
        )
    return objects


def _parse_tag(text: str, where: str) -> ObjectRef:
    match = C_TAG.fullmatch(text.strip())
    if match is None:
        raise DriveLmError(f"{where}: {text!r} is not a c tag <cN,CAMERA,x,y>")
    return _ref(match, where)


def _ref(match: re.Match[str], where: str) -> ObjectRef:
    camera = match.group(2)
    if camera not in CAMERAS:
        raise DriveLmError(f"{where}: unknown camera {camera!r} in {match.group(0)}")
    return ObjectRef(match.group(0), match.group(1), camera, (float(match.group(3)), float(match.group(4))))


def find_tags(text: str, where: str = "text") -> list[ObjectRef]:
    """The c tags of a text, in order (camera and centre; no box)."""
    return [_ref(m, where) for m in C_TAG.finditer(text)]


def _resolve(
    text: str, objects: dict[str, tuple[ObjectRef, tuple[str, str]]] | None, where: str
) -> list[ObjectRef]:
    refs = []
    for ref in find_tags(text, where):
        if objects is None:
            refs.append(ref)
        elif ref.tag in objects:
            refs.append(objects[ref.tag][0])
        else:
            raise DriveLmError(f"{where}: c tag {ref.tag} has no object in key_object_infos")
    return refs


def parse_options(question: str) -> tuple[str, ...]:
    """The choices of a multiple-choice question ("... options: A. x. B. y. ..."), in letter order."""
    marker = question.find(OPTIONS_MARKER)
    if marker < 0:
        return ()
    text = question[marker + len(OPTIONS_MARKER) :]
    starts = []
    for letter in "ABCDEFGH":
        found = re.search(rf"(?:^|\s){letter}\.\s", text[starts[-1][1] if starts else 0 :])
        if found is None:
            break
        offset = starts[-1][1] if starts else 0
        starts.append((offset + found.start(), offset + found.end()))
    bounds = [*starts, (len(text), len(text))]
    return tuple(text[end : bounds[i + 1][0]].strip() for i, (_, end) in enumerate(starts))


def _qa_item(
    group: str, index: int, qa: Any, objects: dict[str, tuple[ObjectRef, tuple[str, str]]] | None, where: str
) -> VqaItem:
    if not isinstance(qa, dict) or not isinstance(qa.get("Q"), str) or not isinstance(qa.get("A"), str):
        raise DriveLmError(f"{where}: needs text fields 'Q' and 'A'")
    question, answer = qa["Q"], qa["A"]
    _resolve(question, objects, f"{where} Q")  # every tag of the question must be known too
    refs = _resolve(answer, objects, f"{where} A")
    options = parse_options(question)
    if options and answer.strip() not in "ABCDEFGH"[: len(options)]:
        raise DriveLmError(f"{where}: multiple-choice answer {answer!r} is not one of the option letters")
    return VqaItem(
        id=f"{group}-{index}",
        question=question,
        answer=answer,
        group=group,
        options=options,
        metrics=_metrics(qa.get("tag"), options, refs, where),
        objects=tuple(refs),
    )


def _metrics(tag: Any, options: tuple[str, ...], refs: list[ObjectRef], where: str) -> tuple[str, ...]:
    """DriveLM's tags when given, else multiple-choice -> accuracy; open -> language (+ match with tags)."""
    if tag is not None:
        if not isinstance(tag, list) or any(t not in TAG_METRICS for t in tag):
            raise DriveLmError(f"{where}: tag must be a list of {sorted(TAG_METRICS)}, got {tag!r}")
        return tuple(TAG_METRICS[t] for t in sorted(set(tag)))
    if options:
        return ("accuracy",)
    return ("language", "match") if refs else ("language",)


def group_counts(data: Mapping[str, Any]) -> dict[str, int]:
    """QA items per group over the whole file (what an import must reproduce)."""
    counts = dict.fromkeys(GROUPS, 0)
    for scene in data.values():
        for entry in scene["key_frames"].values():
            for group in GROUPS:
                counts[group] += len(entry["QA"].get(group, []))
    return counts


def iter_images(frames: Sequence[KeyFrame]) -> Iterator[CameraImage]:
    """Every key frame image."""
    for frame in frames:
        yield from frame.images

"""A rosbags typestore that knows SpotVLM's interfaces, and dict <-> rosbags message conversion.

Reads the real ``.msg``/``.action`` files of ``spotvlm_msgs`` (source tree, installed share folder or
the ament index) and the bundled ``vision_msgs`` definitions, so bags written here are real ROS 2 bags
that ``ros2 bag`` and Foxglove read with the same types.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE_DIR = Path(__file__).resolve().parent.parent
VISION_MSGS_DIR = PACKAGE_DIR / "third_party" / "vision_msgs" / "msg"
ACTION_PARTS = ("Goal", "Result", "Feedback")


def interface_dirs() -> list[Path]:
    """Folders that may hold ``msg/`` and ``action/`` of spotvlm_msgs, most specific first."""
    candidates = [
        PACKAGE_DIR.parent / "spotvlm_msgs",  # source tree / editable install
        Path(sys.prefix) / "share" / "spotvlm_ros" / "interfaces",  # pip install (data_files)
    ]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "spotvlm_msgs")
    return [c for c in candidates if (c / "msg").is_dir()]


def find_interface_dir() -> Path:
    dirs = interface_dirs()
    if not dirs:
        raise FileNotFoundError("spotvlm_msgs interface definitions not found (source tree or share/)")
    return dirs[0]


def interface_files(root: Path | None = None) -> list[Path]:
    root = root or find_interface_dir()
    return sorted((root / "msg").glob("*.msg")) + sorted((root / "action").glob("*.action"))


def split_action(text: str) -> dict[str, str]:
    """Split ``.action`` text into Goal, Result and Feedback message texts."""
    parts = _split_on_separator(text)
    if len(parts) != 3:
        raise ValueError(f"an action needs 3 parts separated by '---', found {len(parts)}")
    return dict(zip(ACTION_PARTS, parts, strict=True))


def _split_on_separator(text: str) -> list[str]:
    parts: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip() == "---":
            parts.append([])
        else:
            parts[-1].append(line)
    return ["\n".join(p) + "\n" for p in parts]


def _iter_types(root: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(VISION_MSGS_DIR.glob("*.msg")):
        yield get_types_from_msg(path.read_text(), f"vision_msgs/msg/{path.stem}")
    for path in interface_files(root):
        if path.suffix == ".msg":
            yield get_types_from_msg(path.read_text(), f"spotvlm_msgs/msg/{path.stem}")
        else:
            for part, text in split_action(path.read_text()).items():
                yield get_types_from_msg(text, f"spotvlm_msgs/action/{path.stem}_{part}")


@lru_cache(maxsize=1)
def spotvlm_typestore() -> Typestore:
    """ROS 2 Jazzy types + vision_msgs + spotvlm_msgs (messages and action parts)."""
    store = get_typestore(Stores.ROS2_JAZZY)
    root = find_interface_dir()
    for types in _iter_types(root):
        store.register(types)
    return store


def build_message(store: Typestore, typename: str, data: dict[str, Any]) -> Any:
    """Build a rosbags message object of ``typename`` from a nested dict in ROS layout.

    Missing fields take their zero value, unknown fields raise KeyError naming them. The builder of
    each type is compiled once per store (writing bags calls this for every message).
    """
    builders = _BUILDERS.setdefault(id(store), {})
    builder = builders.get(typename) or _compile_message(store, typename, builders)
    return builder(data)


Builder = Callable[[Any], Any]
_BUILDERS: dict[int, dict[str, Builder]] = {}


def _compile_message(store: Typestore, typename: str, builders: dict[str, Builder]) -> Builder:
    _, fields = store.fielddefs[typename]
    cls = store.types[typename]
    names = frozenset(name for name, _ in fields)
    parts: list[tuple[str, Builder]] = []

    def build(data: Any) -> Any:
        data = data or {}
        if not names.issuperset(data):
            raise KeyError(f"{typename} has no field(s) {sorted(set(data) - names)}")
        return cls(**{name: part(data.get(name)) for name, part in parts})

    builders[typename] = build  # registered before its fields compile, so nested types reuse it
    parts.extend((name, _compile_value(store, desc, builders)) for name, desc in fields)
    return build


def _compile_value(store: Typestore, desc: tuple[Any, Any], builders: dict[str, Builder]) -> Builder:
    kind, spec = desc
    kind_name = getattr(kind, "name", str(kind))
    if kind_name == "NAME":
        return builders.get(spec) or _compile_message(store, spec, builders)
    if kind_name == "BASE":
        return _BASE_BUILDERS.get(spec[0], _int_value)
    inner, _size = spec
    inner_kind = getattr(inner[0], "name", str(inner[0]))
    if inner_kind == "BASE" and inner[1][0] != "string":
        return _array_builder(_NUMPY_TYPES[inner[1][0]])
    item = _compile_value(store, inner, builders)
    return lambda value: [item(v) for v in value or ()]


def _array_builder(dtype: Any) -> Builder:
    def array(value: Any) -> np.ndarray:
        if value is None:
            return np.zeros(0, dtype=dtype)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return np.frombuffer(value, dtype=dtype).copy()
        return np.asarray(value, dtype=dtype).ravel()

    return array


_NUMPY_TYPES = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}


def _int_value(value: Any) -> int:
    return 0 if value is None else int(value)


def _float_value(value: Any) -> float:
    return 0.0 if value is None else float(value)


_BASE_BUILDERS: dict[str, Builder] = {
    "string": lambda value: "" if value is None else str(value),
    "bool": bool,
    "float32": _float_value,
    "float64": _float_value,
}


def message_to_dict(msg: Any) -> Any:
    """Inverse of :func:`build_message`: nested dicts, lists, and bytes for uint8 arrays."""
    if hasattr(msg, "__dataclass_fields__"):
        return {
            name: message_to_dict(getattr(msg, name))
            for name in msg.__dataclass_fields__
            if not name.startswith("__")
        }
    if isinstance(msg, np.ndarray):
        return msg.tobytes() if msg.dtype == np.uint8 else msg.tolist()
    if isinstance(msg, list):
        return [message_to_dict(m) for m in msg]
    return msg

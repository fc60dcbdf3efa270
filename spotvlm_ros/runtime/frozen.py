"""Work done once per read-only image (or JPEG), remembered while the image lives.

An evaluation replays the same decoded frames many times (every question of a DriveLM drive, every mode,
every latency profile). A keyframe's JPEG for the cloud, the cloud's decode of it and the digest that the
evaluation's model-call cache keys on are the same every time. An image whose pixels cannot change (a
read-only array that owns its data) gets each of them computed once; they go when the array does.
Writable images, such as live camera frames, are worked on every time.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from typing import TypeVar

import numpy as np

from .image_codec import decode_compressed, encode_jpeg

T = TypeVar("T")

_LOCK = threading.Lock()
_MEMO: dict[tuple[int, Hashable], object] = {}
# keys of images that died: a finalizer may run inside any allocation (even with _LOCK held), so it only
# queues the key, and the next lookup drops it, before a new image can have been given the same id
_DEAD: deque[tuple[int, Hashable]] = deque()


def is_frozen(image: np.ndarray) -> bool:
    """Whether ``image``'s pixels cannot change: read-only and owning its data (no writable owner)."""
    return not image.flags.writeable and image.flags.owndata


def _drop_dead() -> None:
    """Forget the results of images that died (with _LOCK held)."""
    while _DEAD:
        _MEMO.pop(_DEAD.popleft(), None)


def once(image: np.ndarray, what: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, remembered under ``what`` for a frozen ``image`` while it lives."""
    if not is_frozen(image):
        return compute()
    key = (id(image), what)
    with _LOCK:
        _drop_dead()
        if key in _MEMO:
            return _MEMO[key]  # type: ignore[return-value]
    value = compute()
    with _LOCK:
        if key not in _MEMO:
            _MEMO[key] = value
            weakref.finalize(image, _DEAD.append, key)  # runs before the id can be reused
    return value


def remembered() -> int:
    """How many results are held now."""
    with _LOCK:
        _drop_dead()
        return len(_MEMO)


def encode_jpeg_once(image: np.ndarray, quality: int, max_side: int) -> bytes:
    """``encode_jpeg(image, quality, max_side)``, computed once for a frozen image."""
    return once(image, ("jpeg", int(quality), int(max_side)), lambda: encode_jpeg(image, quality, max_side))


def digest_once(image: np.ndarray) -> bytes:
    """A 20-byte digest of the image's shape, type and pixels, computed once for a frozen image."""

    def compute() -> bytes:
        digest = hashlib.blake2b(repr((image.shape, image.dtype.str)).encode(), digest_size=20)
        digest.update(np.ascontiguousarray(image).data)
        return digest.digest()

    return once(image, "digest", compute)


def decode_jpeg_once(source: np.ndarray, jpeg: bytes, quality: int, max_side: int) -> np.ndarray:
    """``decode_compressed(jpeg)`` for ``jpeg = encode_jpeg(source, quality, max_side)``.

    For a frozen ``source`` the decode is done once and comes back frozen itself (so its digest is
    remembered too); otherwise it is decoded every time.
    """

    def compute() -> np.ndarray:
        image = decode_compressed(jpeg)
        image.setflags(write=False)
        return image

    if not is_frozen(source):
        return decode_compressed(jpeg)
    return once(source, ("decoded", int(quality), int(max_side)), compute)

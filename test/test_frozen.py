"""Work on read-only images is done once while they live; writable images are worked on every time."""

from __future__ import annotations

import gc
import threading

import numpy as np
from time_scale import scaled

from spotvlm_ros.runtime import frozen
from spotvlm_ros.runtime.frozen import decode_jpeg_once, digest_once, encode_jpeg_once, once, remembered
from spotvlm_ros.runtime.image_codec import decode_compressed, encode_jpeg


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (90, 160, 3), dtype=np.uint8)


def _frozen(seed: int = 0) -> np.ndarray:
    image = _image(seed)
    image.setflags(write=False)
    return image


def test_frozen_image_worked_on_once_and_forgotten_with_it():
    image, calls = _frozen(), []
    before = remembered()
    assert once(image, "a", lambda: calls.append(1) or 41) == 41
    assert once(image, "a", lambda: calls.append(1) or 42) == 41 and len(calls) == 1
    assert once(image, "b", lambda: 7) == 7  # another kind of work: its own entry
    assert remembered() == before + 2
    del image
    gc.collect()
    assert remembered() == before


def test_writable_and_borrowed_images_worked_on_every_time():
    image = _image(1)
    assert once(image, "a", lambda: 1) == 1 and once(image, "a", lambda: 2) == 2
    view = image[:, :80]
    view.setflags(write=False)  # read-only, but its owner can still change the pixels
    assert not frozen.is_frozen(view)
    assert once(view, "a", lambda: 1) == 1 and once(view, "a", lambda: 2) == 2


def test_jpeg_encode_decode_and_digest_equal_the_plain_work():
    image = _frozen(2)
    jpeg = encode_jpeg_once(image, 80, 64)
    assert jpeg == encode_jpeg(image, quality=80, max_side=64)
    assert encode_jpeg_once(image, 80, 64) is jpeg
    assert encode_jpeg_once(image, 90, 64) != jpeg
    decoded = decode_jpeg_once(image, jpeg, 80, 64)
    assert np.array_equal(decoded, decode_compressed(jpeg)) and not decoded.flags.writeable
    assert decode_jpeg_once(image, jpeg, 80, 64) is decoded
    assert digest_once(image) == digest_once(image.copy()) != digest_once(_image(3))
    writable = _image(2)
    assert decode_jpeg_once(writable, jpeg, 80, 64) is not decode_jpeg_once(writable, jpeg, 80, 64)


def test_an_image_dying_while_the_memo_is_locked_does_not_deadlock():
    """Garbage collection can finalize an image inside any allocation, the memo's own included."""
    image = _frozen(4)
    once(image, "a", lambda: 1)
    before = remembered()
    done = threading.Event()

    def die_under_the_lock() -> None:
        nonlocal image
        with frozen._LOCK:
            image = None  # the last reference: its finalizer runs here, with the lock held
        done.set()

    threading.Thread(target=die_under_the_lock, daemon=True).start()
    assert done.wait(scaled(10.0)), "the finalizer blocked on the memo's lock"
    assert remembered() == before - 1

"""The project's raw-image codec against ROS's cv_bridge: the same pixels for every encoding both know.

Runs only where cv_bridge and sensor_msgs import (a sourced ROS 2 workspace). Each encoding is tried
at odd sizes, with padded rows (``step`` two pixels wider than the row) and, for 16-bit encodings, in
both byte orders. cv_bridge's own limits, found here and worked around, not hidden:

- it slices padded rows as whole pixels, so its ``step`` must be a multiple of the pixel size;
- it cannot read big-endian data under numpy 2 (``ndarray.newbyteorder`` is gone), so a big-endian
  message is compared with cv_bridge's reading of the same pixels sent little-endian;
- ``8UC*``/``16UC1`` have no colour meaning for it, so their unpacked pixels (``passthrough``) are
  compared, read as OpenCV's BGR order as the project does;
- for 16-bit data the 8-bit mapping is a choice (the project stretches a mono16 frame's peak to 255 and
  keeps a Bayer frame's high byte), so the unpacked 16-bit pixels are compared through that mapping.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from ros_env import importable

from spotvlm_ros.runtime.image_codec import decode_raw, supported_encodings


def _cv_bridge_missing() -> str:
    missing = [module for module in ("cv_bridge", "sensor_msgs") if not importable(module)]
    if missing:
        return f"{missing[0]} not importable: source a ROS 2 setup.bash to compare with cv_bridge"
    return ""


pytestmark = pytest.mark.skipif(bool(_cv_bridge_missing()), reason=_cv_bridge_missing() or "ok")

SIZES = ((7, 5), (1, 1), (33, 17))  # odd widths and heights
EVEN_SIZES = ((6, 5), (2, 1), (34, 17))  # packed YUV 4:2:2 pairs pixels
BAYER_SIZES = ((8, 6), (34, 18))
BAYER = {"rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB}
BAYER |= {"gbrg": cv2.COLOR_BayerGR2RGB, "grbg": cv2.COLOR_BayerGB2RGB}


def bridge():
    from cv_bridge import CvBridge

    return CvBridge()


def pixel_layout(encoding: str) -> tuple[np.dtype, int]:
    """cv_bridge's dtype and channel count of ``encoding`` (raises for one it does not know)."""
    dtype, channels = bridge().encoding_to_dtype_with_channels(encoding)
    return np.dtype(dtype), int(channels)


def known_to_both() -> list[str]:
    if _cv_bridge_missing():
        return []
    from cv_bridge import CvBridgeError

    names = []
    for encoding in supported_encodings():
        try:
            pixel_layout(encoding)
        except (CvBridgeError, KeyError, TypeError):
            continue
        names.append(encoding)
    return names


def sizes_of(encoding: str, channels: int) -> tuple[tuple[int, int], ...]:
    if encoding.startswith("bayer_"):
        return BAYER_SIZES
    return EVEN_SIZES if channels == 2 and encoding.startswith("yuv") else SIZES


def message(encoding: str, width: int, height: int, step: int, data: bytes, bigendian: bool = False):
    from sensor_msgs.msg import Image

    return Image(
        height=height, width=width, encoding=encoding, is_bigendian=int(bigendian), step=step, data=data
    )


def padded_frame(encoding: str, width: int, height: int, rng: np.random.Generator) -> tuple[int, bytes]:
    """Random pixels with two pixels of padding per row: (step, data)."""
    dtype, channels = pixel_layout(encoding)
    pixel = dtype.itemsize * channels
    step = (width + 2) * pixel
    return step, rng.integers(0, 256, step * height, dtype=np.uint8).tobytes()


def bridge_rgb(encoding: str, msg) -> np.ndarray:
    """What cv_bridge makes of ``msg`` as 8-bit RGB, mapped as the project maps (module docstring)."""
    from cv_bridge import CvBridgeError

    try:
        return bridge().imgmsg_to_cv2(msg, desired_encoding="rgb8")
    except CvBridgeError:
        if pixel_layout(encoding)[0].itemsize != 1:
            raise
    raw = bridge().imgmsg_to_cv2(msg)  # 8UC1/8UC3/8UC4: no colour meaning for cv_bridge
    conversion = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}
    return cv2.cvtColor(np.ascontiguousarray(raw), conversion[1 if raw.ndim == 2 else raw.shape[2]])


def bridge_rgb_16(encoding: str, msg) -> np.ndarray:
    """cv_bridge's unpacked 16-bit pixels mapped to 8-bit RGB the project's way."""
    raw = bridge().imgmsg_to_cv2(msg).astype(np.uint16)
    if encoding.startswith("bayer_"):
        return cv2.cvtColor((raw >> 8).astype(np.uint8), BAYER[encoding[len("bayer_") : -2]])
    peak = int(raw.max())
    scaled = cv2.convertScaleAbs(raw, alpha=255.0 / peak) if peak else raw.astype(np.uint8)
    return cv2.cvtColor(scaled, cv2.COLOR_GRAY2RGB)


def test_both_know_the_common_encodings():
    assert {"rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "yuv422", "bayer_rggb8"} <= set(
        known_to_both()
    )


@pytest.mark.parametrize("encoding", known_to_both())
def test_the_codec_and_cv_bridge_give_the_same_pixels(encoding):
    rng = np.random.default_rng(sum(map(ord, encoding)))
    dtype, channels = pixel_layout(encoding)
    for width, height in sizes_of(encoding, channels):
        step, data = padded_frame(encoding, width, height, rng)
        ours = decode_raw(data, width=width, height=height, encoding=encoding, step=step)
        msg = message(encoding, width, height, step, data)
        theirs = bridge_rgb_16(encoding, msg) if dtype.itemsize == 2 else bridge_rgb(encoding, msg)
        assert ours.shape == (height, width, 3) and ours.dtype == np.uint8
        np.testing.assert_array_equal(ours, theirs, err_msg=f"{encoding} {width}x{height} step {step}")


@pytest.mark.parametrize("encoding", [e for e in known_to_both() if pixel_layout(e)[0].itemsize == 2])
def test_big_endian_16_bit_data_reads_as_the_same_pixels_little_endian(encoding):
    rng = np.random.default_rng(7)
    for width, height in sizes_of(encoding, 1):
        step, data = padded_frame(encoding, width, height, rng)
        swapped = np.frombuffer(data, np.uint8).reshape(-1, 2)[:, ::-1].tobytes()
        ours = decode_raw(
            swapped, width=width, height=height, encoding=encoding, step=step, is_bigendian=True
        )
        theirs = bridge_rgb_16(encoding, message(encoding, width, height, step, data))
        np.testing.assert_array_equal(ours, theirs, err_msg=f"{encoding} {width}x{height} big-endian")

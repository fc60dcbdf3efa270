"""Camera images in and out: ``sensor_msgs/Image`` and ``CompressedImage`` <-> RGB numpy arrays.

Decoding accepts any object with the message's fields (rosbags messages, rclpy messages, plain
namespaces) and returns an HxWx3 uint8 RGB array. Raw images are read with ``np.frombuffer`` and,
for ``rgb8`` without row padding, returned as a read-only view of the message buffer (no copy):
copy before drawing on it. Every problem raises :class:`ImageDecodeError` with a short ``reason``
key (counted by the bag reader) and a human-readable message.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import cv2
import numpy as np

from ..core.messages import header

MAX_PIXELS = 8192 * 8192
"""Largest accepted image (width x height); larger claims are rejected before any allocation."""

_BAYER_TO_RGB = {
    # ROS names the pattern from the top-left pixel; OpenCV from the second row's second pixel.
    "rggb": cv2.COLOR_BayerBG2RGB,
    "bggr": cv2.COLOR_BayerRG2RGB,
    "gbrg": cv2.COLOR_BayerGR2RGB,
    "grbg": cv2.COLOR_BayerGB2RGB,
}
_CHANNELS_8BIT = {
    "rgb8": 3,
    "bgr8": 3,
    "8UC3": 3,
    "rgba8": 4,
    "bgra8": 4,
    "8UC4": 4,
    "mono8": 1,
    "8UC1": 1,
    "yuv422": 2,
    "uyvy": 2,
    "yuv422_yuy2": 2,
    "yuyv": 2,
}
_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB,
    "8UC3": cv2.COLOR_BGR2RGB,  # OpenCV's (and cv_bridge's) channel order
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "8UC4": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
    "8UC1": cv2.COLOR_GRAY2RGB,
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV,
    "yuyv": cv2.COLOR_YUV2RGB_YUYV,
}
_MONO16 = ("mono16", "16UC1")
_JPEG_EOI = b"\xff\xd9"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"


class ImageDecodeError(ValueError):
    """An image that cannot be decoded; ``reason`` is a short key for counting."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def supported_encodings() -> tuple[str, ...]:
    """Raw ``sensor_msgs/Image`` encodings :func:`decode_raw` understands."""
    bayer = tuple(f"bayer_{p}{bits}" for p in _BAYER_TO_RGB for bits in (8, 16))
    return ("rgb8", *_TO_RGB, *_MONO16, *bayer)


def decode_image_msg(msg: Any, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` or ``CompressedImage`` message to HxWx3 uint8 RGB."""
    if hasattr(msg, "encoding"):
        return decode_raw(
            msg.data,
            width=int(msg.width),
            height=int(msg.height),
            encoding=str(msg.encoding),
            step=int(msg.step),
            is_bigendian=bool(msg.is_bigendian),
            max_pixels=max_pixels,
        )
    if hasattr(msg, "format"):
        return decode_compressed(msg.data, str(msg.format), max_pixels=max_pixels)
    raise ImageDecodeError("not_an_image", f"{type(msg).__name__} has neither 'encoding' nor 'format'")


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageDecodeError("zero_size", f"image is {width}x{height}")
    if width * height > max_pixels:
        raise ImageDecodeError(
            "too_large", f"image claims {width}x{height} = {width * height} pixels, limit {max_pixels}"
        )


def _rows(buffer: np.ndarray, height: int, step: int, row_bytes: int, encoding: str) -> np.ndarray:
    """View the buffer as ``height`` rows of ``row_bytes`` (dropping row padding) after checks."""
    if step < row_bytes:
        raise ImageDecodeError("bad_step", f"{encoding} step {step} < {row_bytes} bytes per row")
    if buffer.size != step * height:
        raise ImageDecodeError(
            "size_mismatch", f"data has {buffer.size} bytes, step {step} x height {height} = {step * height}"
        )
    rows = buffer.reshape(height, step)
    return rows if step == row_bytes else rows[:, :row_bytes]


def decode_raw(
    data: Any,
    *,
    width: int,
    height: int,
    encoding: str,
    step: int,
    is_bigendian: bool = False,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Decode the pixel buffer of a ``sensor_msgs/Image`` (honours ``step`` and ``is_bigendian``)."""
    _check_size(width, height, max_pixels)
    buffer = np.frombuffer(data, dtype=np.uint8)
    if encoding in _CHANNELS_8BIT or encoding == "rgb8":
        channels = _CHANNELS_8BIT.get(encoding, 3)
        if channels == 2 and width % 2:
            raise ImageDecodeError(
                "bad_size", f"{encoding} needs an even width (pixel pairs share chroma), got {width}"
            )
        rows = _rows(buffer, height, step, width * channels, encoding)
        image = rows.reshape(height, width, channels)
        if encoding == "rgb8":
            return np.ascontiguousarray(image)  # a view of the buffer unless rows are padded
        if channels == 1:
            image = image[:, :, 0]
        return cv2.cvtColor(np.ascontiguousarray(image), _TO_RGB[encoding])
    if encoding in _MONO16 or encoding.startswith("bayer_"):
        return _decode_16bit_or_bayer(buffer, width, height, encoding, step, is_bigendian)
    raise ImageDecodeError("unknown_encoding", f"unsupported encoding {encoding!r}")


def _bayer_pattern(encoding: str) -> tuple[str, int]:
    """("rggb", 8) for ``bayer_rggb8``; raises for an unknown pattern or depth."""
    for bits in (8, 16):
        pattern = encoding[len("bayer_") : -len(str(bits))]
        if encoding == f"bayer_{pattern}{bits}" and pattern in _BAYER_TO_RGB:
            return pattern, bits
    raise ImageDecodeError("unknown_encoding", f"unsupported encoding {encoding!r}")


def _decode_16bit_or_bayer(
    buffer: np.ndarray, width: int, height: int, encoding: str, step: int, is_bigendian: bool
) -> np.ndarray:
    pattern, bits = _bayer_pattern(encoding) if encoding.startswith("bayer_") else ("", 16)
    rows = _rows(buffer, height, step, width * bits // 8, encoding)
    if bits == 8:
        return cv2.cvtColor(np.ascontiguousarray(rows), _BAYER_TO_RGB[pattern])
    wire = np.dtype(">u2" if is_bigendian else "<u2")
    pixels = np.ascontiguousarray(rows).view(wire).reshape(height, width).astype(np.uint16, copy=False)
    if pattern:
        return cv2.cvtColor((pixels >> 8).astype(np.uint8), _BAYER_TO_RGB[pattern])
    # mono16 / 16UC1 often hold 12-bit or depth data: stretch the frame's maximum to 255.
    peak = int(pixels.max())
    scaled = cv2.convertScaleAbs(pixels, alpha=255.0 / peak) if peak else pixels.astype(np.uint8)
    return cv2.cvtColor(scaled, cv2.COLOR_GRAY2RGB)


def compressed_image_size(data: bytes | memoryview | np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a JPEG or PNG header without decoding; None when not found."""
    head = bytes(memoryview(data)[:65536])
    if head.startswith(_PNG_MAGIC) and len(head) >= 24 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(head)
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", head[pos + 2 : pos + 4])
        is_sof = 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)
        if is_sof and pos + 9 <= len(head):
            height, width = struct.unpack(">HH", head[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None


def decode_compressed(
    data: bytes | memoryview | np.ndarray, fmt: str = "", max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Decode JPEG or PNG bytes (``CompressedImage.data``) to HxWx3 uint8 RGB."""
    if "compresseddepth" in fmt.lower():
        raise ImageDecodeError("unknown_format", f"compressedDepth images are not camera images ({fmt!r})")
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageDecodeError("zero_size", "compressed image has no data")
    size = compressed_image_size(buffer)
    if size is None:
        raise ImageDecodeError("corrupt_compressed", f"not a JPEG or PNG stream (format {fmt!r})")
    _check_size(size[0], size[1], max_pixels)
    if not _complete_stream(buffer):
        raise ImageDecodeError("corrupt_compressed", f"truncated {'PNG' if _is_png(buffer) else 'JPEG'}")
    image = cv2.imdecode(buffer, _IMREAD_RGB if _IMREAD_RGB is not None else cv2.IMREAD_COLOR)
    if image is None:
        raise ImageDecodeError("corrupt_compressed", f"OpenCV could not decode {buffer.size} bytes")
    return image if _IMREAD_RGB is not None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# OpenCV >= 4.10 decodes straight to RGB; older ones (Debian/Ubuntu python3-opencv 4.5/4.6 that ROS 2
# installs) decode to BGR, converted after.
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def _is_png(buffer: np.ndarray) -> bool:
    return bytes(buffer[:8]) == _PNG_MAGIC


def _complete_stream(buffer: np.ndarray) -> bool:
    """True when a JPEG ends with EOI (trailing zero padding allowed) or a PNG with IEND."""
    tail = bytes(buffer[-64:]).rstrip(b"\x00")
    return tail.endswith(_PNG_IEND) if _is_png(buffer) else tail.endswith(_JPEG_EOI)


def resize_max_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so the longest side is at most ``max_side``; 0 keeps the size.

    Halvings with a Gaussian pyramid (``cv2.pyrDown``) while at least half the size is to go, then a
    Gaussian pre-blur matched to the rest of the factor and one bilinear step. Measured on a 1600x900
    nuScenes frame to 1024 px (the keyframe encoder's largest cost): 4.6 ms against 9.7 for
    ``INTER_AREA``, 53 dB PSNR from it, and a one-pixel checkerboard comes out flatter than area's.
    """
    height, width = image.shape[:2]
    longest = max(height, width)
    if max_side <= 0 or longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        image = cv2.pyrDown(image)
    rest = max(size[0] / image.shape[1], size[1] / image.shape[0])
    if rest >= 1.0:
        return image if (image.shape[1], image.shape[0]) == size else cv2.resize(image, size)
    sigma = 0.5 * math.sqrt(1.0 / rest**2 - 1.0)  # the anti-alias blur of what is left to shrink
    kernel = 3 if sigma < 0.8 else 5
    blurred = cv2.GaussianBlur(image, (kernel, kernel), sigma)
    return cv2.resize(blurred, size, interpolation=cv2.INTER_LINEAR)


def encode_jpeg(image: np.ndarray, quality: int = 90, max_side: int = 0) -> bytes:
    """Encode an RGB image as JPEG, downscaled to ``max_side`` first when given."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected HxWx3 uint8 RGB, got {image.dtype} {image.shape}")
    bgr = cv2.cvtColor(resize_max_side(image, max_side), cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("OpenCV failed to encode the image as JPEG")
    return encoded.tobytes()


def rgb_to_image_msg(image: np.ndarray, stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """``sensor_msgs/Image`` (rgb8, no padding) in ROS dict layout for an RGB image."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected HxWx3 uint8 RGB, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    return {
        "header": header(stamp_ns, frame_id),
        "height": height,
        "width": width,
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": width * 3,
        "data": np.ascontiguousarray(image).reshape(-1),
    }


def rgb_to_compressed_msg(
    image: np.ndarray, stamp_ns: int, frame_id: str, quality: int = 90, max_side: int = 0
) -> dict[str, Any]:
    """``sensor_msgs/CompressedImage`` (JPEG) in ROS dict layout for an RGB image."""
    jpeg = encode_jpeg(image, quality=quality, max_side=max_side)
    return {"header": header(stamp_ns, frame_id), "format": "jpeg", "data": np.frombuffer(jpeg, np.uint8)}

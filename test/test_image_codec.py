"""Image decoding of every supported encoding, and the clear rejection of bad images."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from spotvlm_ros.runtime.image_codec import (
    ImageDecodeError,
    compressed_image_size,
    decode_compressed,
    decode_image_msg,
    decode_raw,
    encode_jpeg,
    resize_max_side,
    rgb_to_compressed_msg,
    rgb_to_image_msg,
    supported_encodings,
)
from spotvlm_ros.runtime.typestore import build_message, spotvlm_typestore


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    """A smooth colour image (demosaicing and JPEG keep it close)."""
    y, x = np.mgrid[0:48, 0:64]
    return np.stack([x * 4, y * 5, 255 - x * 3], axis=-1).astype(np.uint8)


def _msg(data: bytes, width: int, height: int, encoding: str, step: int, big: int = 0):
    return SimpleNamespace(
        data=data, width=width, height=height, encoding=encoding, step=step, is_bigendian=big
    )


def test_rgb8_is_a_view_without_copy(rgb):
    buffer = rgb.tobytes()
    out = decode_raw(buffer, width=64, height=48, encoding="rgb8", step=64 * 3)
    assert np.array_equal(out, rgb)
    assert np.shares_memory(out, np.frombuffer(buffer, np.uint8))


@pytest.mark.parametrize(
    ("encoding", "convert"),
    [
        ("bgr8", cv2.COLOR_RGB2BGR),
        ("8UC3", cv2.COLOR_RGB2BGR),
        ("rgba8", cv2.COLOR_RGB2RGBA),
        ("bgra8", cv2.COLOR_RGB2BGRA),
    ],
)
def test_colour_encodings_come_back_rgb(rgb, encoding, convert):
    pixels = cv2.cvtColor(rgb, convert)
    step = pixels.shape[1] * pixels.shape[2]
    out = decode_raw(pixels.tobytes(), width=64, height=48, encoding=encoding, step=step)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    assert np.array_equal(out, rgb)


def test_mono8_becomes_grey_rgb():
    grey = np.arange(48 * 64, dtype=np.uint32).reshape(48, 64).astype(np.uint8)
    out = decode_raw(grey.tobytes(), width=64, height=48, encoding="mono8", step=64)
    assert out.shape == (48, 64, 3)
    assert np.array_equal(out[:, :, 0], grey) and np.array_equal(out[:, :, 2], grey)


def test_row_padding_is_dropped(rgb):
    padded = np.zeros((48, 64 * 3 + 8), np.uint8)
    padded[:, : 64 * 3] = rgb.reshape(48, -1)
    out = decode_raw(padded.tobytes(), width=64, height=48, encoding="rgb8", step=64 * 3 + 8)
    assert np.array_equal(out, rgb)
    assert out.flags.c_contiguous


@pytest.mark.parametrize("big_endian", [False, True])
def test_mono16_scaled_with_either_byte_order(big_endian):
    values = (np.arange(64 * 48).reshape(48, 64) % 4096).astype(np.uint16)  # 12-bit data
    wire = values.astype(">u2" if big_endian else "<u2").tobytes()
    out = decode_raw(wire, width=64, height=48, encoding="mono16", step=128, is_bigendian=big_endian)
    assert out.shape == (48, 64, 3)
    assert out[:, :, 0].max() == 255
    expected = np.round(values.astype(np.float64) * 255.0 / values.max())
    assert np.abs(out[:, :, 0].astype(np.float64) - expected).max() <= 1


def _mosaic_rggb(rgb: np.ndarray) -> np.ndarray:
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    mosaic[0::2, 0::2] = rgb[0::2, 0::2, 0]  # R
    mosaic[0::2, 1::2] = rgb[0::2, 1::2, 1]  # G
    mosaic[1::2, 0::2] = rgb[1::2, 0::2, 1]  # G
    mosaic[1::2, 1::2] = rgb[1::2, 1::2, 2]  # B
    return mosaic


def test_bayer_rggb_demosaics_to_the_right_colours(rgb):
    mosaic = _mosaic_rggb(rgb)
    out = decode_raw(mosaic.tobytes(), width=64, height=48, encoding="bayer_rggb8", step=64)
    inner = (slice(4, -4), slice(4, -4))
    assert np.abs(out[inner].astype(int) - rgb[inner].astype(int)).mean() < 6


def test_bayer16_and_yuv422_decode(rgb):
    mosaic16 = _mosaic_rggb(rgb).astype(np.uint16) << 8
    out = decode_raw(mosaic16.tobytes(), width=64, height=48, encoding="bayer_rggb16", step=128)
    assert np.abs(out[4:-4, 4:-4].astype(int) - rgb[4:-4, 4:-4].astype(int)).mean() < 6
    grey_uyvy = np.full((48, 64, 2), 128, np.uint8)
    grey_uyvy[:, :, 1] = 200  # U/V = 128 (no colour), Y = 200
    out = decode_raw(grey_uyvy.tobytes(), width=64, height=48, encoding="yuv422", step=128)
    expected = round((200 - 16) * 255 / 219)  # BT.601 video range, as cameras send it
    assert out.shape == (48, 64, 3) and abs(int(out[10, 10, 0]) - expected) <= 2
    assert abs(int(out[10, 10, 0]) - int(out[10, 10, 2])) <= 2


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"width": 0, "height": 48, "step": 0}, "zero_size"),
        ({"width": 64, "height": 0, "step": 192}, "zero_size"),
        ({"width": 100_000, "height": 100_000, "step": 300_000}, "too_large"),
        ({"width": 64, "height": 48, "step": 100}, "bad_step"),
        ({"width": 64, "height": 49, "step": 192}, "size_mismatch"),
        ({"width": 64, "height": 48, "step": 192, "encoding": "32FC1"}, "unknown_encoding"),
        ({"width": 64, "height": 48, "step": 192, "encoding": "bayer_xxxx8"}, "unknown_encoding"),
    ],
)
def test_bad_raw_images_raise_with_reason(rgb, kwargs, reason):
    args = {"encoding": "rgb8", **kwargs}
    with pytest.raises(ImageDecodeError) as info:
        decode_raw(rgb.tobytes(), **args)
    assert info.value.reason == reason
    assert reason in str(info.value)


def test_max_pixels_is_configurable(rgb):
    with pytest.raises(ImageDecodeError, match="too_large"):
        decode_raw(rgb.tobytes(), width=64, height=48, encoding="rgb8", step=192, max_pixels=1000)


def test_jpeg_and_png_roundtrip(rgb):
    jpeg = encode_jpeg(rgb, quality=95)
    assert compressed_image_size(jpeg) == (64, 48)
    out = decode_compressed(jpeg, "jpeg")
    assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb.astype(int)).mean() < 4
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok and compressed_image_size(png.tobytes()) == (64, 48)
    assert np.array_equal(decode_compressed(png.tobytes(), "png"), rgb)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b[: len(b) // 2], "corrupt_compressed"),  # truncated JPEG
        (lambda b: b"", "zero_size"),
        (lambda b: b"not an image at all", "corrupt_compressed"),
        (lambda b: b[:2] + bytes(200) + b[-2:], "corrupt_compressed"),  # JPEG magic, garbage inside
    ],
)
def test_corrupt_compressed_raises(rgb, mutate, reason):
    with pytest.raises(ImageDecodeError) as info:
        decode_compressed(mutate(encode_jpeg(rgb)), "jpeg")
    assert info.value.reason == reason


def test_truncated_png_and_huge_claim_rejected(rgb):
    ok, png = cv2.imencode(".png", rgb)
    with pytest.raises(ImageDecodeError, match="truncated PNG"):
        decode_compressed(png.tobytes()[:-20])
    huge = bytearray(png.tobytes())
    huge[16:24] = (60_000).to_bytes(4, "big") + (60_000).to_bytes(4, "big")  # IHDR claims 60k x 60k
    with pytest.raises(ImageDecodeError) as info:
        decode_compressed(bytes(huge))
    assert info.value.reason == "too_large"


def test_compressed_depth_is_refused(rgb):
    with pytest.raises(ImageDecodeError, match="unknown_format"):
        decode_compressed(encode_jpeg(rgb), "16UC1; compressedDepth png")


def test_messages_roundtrip_through_cdr(rgb):
    store = spotvlm_typestore()
    for msgtype, msg in (
        ("sensor_msgs/msg/Image", rgb_to_image_msg(rgb, 5_000_000_123, "cam")),
        ("sensor_msgs/msg/CompressedImage", rgb_to_compressed_msg(rgb, 5_000_000_123, "cam", quality=95)),
    ):
        raw = store.serialize_cdr(build_message(store, msgtype, msg), msgtype)
        decoded = decode_image_msg(store.deserialize_cdr(raw, msgtype))
        assert decoded.shape == rgb.shape
        assert np.abs(decoded.astype(int) - rgb.astype(int)).mean() < 4
    with pytest.raises(ImageDecodeError, match="not_an_image"):
        decode_image_msg(SimpleNamespace(data=b""))


def test_encode_downscales_and_validates(rgb):
    assert resize_max_side(rgb, 32).shape == (24, 32, 3)
    assert resize_max_side(rgb, 0) is rgb
    assert decode_compressed(encode_jpeg(rgb, max_side=32)).shape == (24, 32, 3)
    with pytest.raises(ValueError, match="HxWx3"):
        encode_jpeg(rgb[:, :, 0])


def test_supported_encodings_all_decode(rgb):
    for encoding in supported_encodings():
        if encoding.startswith("bayer") or encoding in ("mono16", "16UC1"):
            bpp = 2 if "16" in encoding else 1
        elif encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv"):
            bpp = 2
        else:
            bpp = {"rgba8": 4, "bgra8": 4, "8UC4": 4, "mono8": 1, "8UC1": 1}.get(encoding, 3)
        data = np.resize(rgb.reshape(-1), 48 * 64 * bpp).tobytes()
        msg = _msg(data, 64, 48, encoding, 64 * bpp)
        out = decode_image_msg(msg)
        assert out.shape == (48, 64, 3) and out.dtype == np.uint8, encoding


def test_compressed_decode_without_imread_color_rgb(monkeypatch):
    """OpenCV < 4.10 (Debian/Ubuntu python3-opencv used with ROS 2) has no IMREAD_COLOR_RGB."""
    import spotvlm_ros.runtime.image_codec as codec

    rgb = np.zeros((8, 16, 3), np.uint8)
    rgb[..., 0] = 250  # pure red in RGB
    ok, png = cv2.imencode(".png", rgb[..., ::-1])
    assert ok
    monkeypatch.setattr(codec, "_IMREAD_RGB", None)
    decoded = codec.decode_compressed(png.tobytes(), "png")
    assert decoded.shape == (8, 16, 3) and (decoded[..., 0] == 250).all() and (decoded[..., 2] == 0).all()


@pytest.mark.parametrize("size, max_side", [((900, 1600), 1024), ((2160, 3840), 1024), ((481, 641), 100)])
def test_downscale_keeps_the_picture_and_does_not_alias(size, max_side):
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width]
    smooth = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 255 // (width + height)], axis=2)
    smooth = smooth.astype(np.uint8)
    out = resize_max_side(smooth, max_side)
    assert max(out.shape[:2]) == max_side
    reference = cv2.resize(smooth, out.shape[1::-1], interpolation=cv2.INTER_AREA).astype(float)
    mse = ((out.astype(float) - reference) ** 2).mean()
    assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 35  # dB: the same picture as an area average
    checker = np.repeat((((xx + yy) % 2) * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    flat = resize_max_side(checker, max_side).astype(float)
    assert abs(flat.mean() - 127.5) < 3 and flat.std() < 12  # a 1-px pattern averages out, no moire

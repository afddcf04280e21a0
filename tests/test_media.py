"""Image decoding from every source kind, decode_media, extracted frames, thumbnails."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from m3eval.data.media import MediaError, VideoRule, decode_image, decode_media, thumbnail_jpeg
from m3eval.data.synthetic import draw_frame, draw_image, encode_video, frame_index_of
from m3eval.types import Media


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return base64.b64encode(buf.getvalue()).decode()


def same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


@pytest.fixture(scope="module")
def img() -> Image.Image:
    return draw_image(3)


def test_draw_image_is_deterministic_and_seeded():
    assert same(draw_image(7), draw_image(7))
    assert not same(draw_image(7), draw_image(8))
    assert draw_image(1, size=(40, 30)).size == (40, 30)


@pytest.mark.parametrize("wrap", [
    lambda b, p: base64.b64encode(b).decode(),
    lambda b, p: "data:image/png;base64," + base64.b64encode(b).decode(),
    lambda b, p: base64.encodebytes(b).decode(),  # with line breaks every 76 chars
    lambda b, p: base64.b64encode(b).decode().rstrip("="),  # padding dropped
    lambda b, p: b,
    lambda b, p: bytearray(b),
    lambda b, p: memoryview(b),
    lambda b, p: str(p),
    lambda b, p: p,
    lambda b, p: {"bytes": b, "path": None},
    lambda b, p: {"bytes": None, "path": str(p)},
    lambda b, p: Image.open(io.BytesIO(b)),
], ids=["b64", "data-uri", "b64-newlines", "b64-unpadded", "bytes", "bytearray", "memoryview",
        "path-str", "path", "dict-bytes", "dict-path", "pil"])
def test_every_source_kind_decodes_to_the_same_rgb_pixels(tmp_path, img, wrap):
    data = png_bytes(img)
    path = tmp_path / "a.png"
    path.write_bytes(data)
    out = decode_image(wrap(data, path))
    assert out.mode == "RGB"
    assert same(out, img)


def test_jpeg_base64_like_m3it(img):
    out = decode_image(jpeg_b64(img))
    assert out.mode == "RGB" and out.size == img.size
    # lossy, but close
    assert np.abs(np.asarray(out, dtype=int) - np.asarray(img, dtype=int)).mean() < 8


def test_numpy_array_and_modes(img):
    assert same(decode_image(np.asarray(img)), img)
    gray = img.convert("L")
    assert decode_image(gray).mode == "RGB"
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))  # fully transparent: white, not black
    assert decode_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    opaque = Image.new("RGBA", (4, 4), (10, 20, 30, 255))
    assert decode_image(opaque).getpixel((0, 0)) == (10, 20, 30)


def test_datasets_image_feature_dicts_round_trip(tmp_path, img):
    import datasets

    ds = datasets.Dataset.from_dict({"image": [img]}).cast_column("image", datasets.Image())
    raw = ds.cast_column("image", datasets.Image(decode=False))[0]["image"]
    assert set(raw) == {"bytes", "path"}
    assert same(decode_image(raw), img)
    assert same(decode_image(ds[0]["image"]), img)  # the decoded PIL form too


@pytest.mark.parametrize("source, expected", [
    (base64.b64encode(b"not an image at all" * 10).decode(),
     "image: cannot identify image file (base64 string of 256 chars)"),
    (b"\x89PNG garbage", "image: cannot identify image file (12 bytes)"),
    ("@@@ not base64 ###", "image: invalid base64 (base64 string of 18 chars)"),
    ("/no/such/dir/picture.jpg", "image: file not found: /no/such/dir/picture.jpg"),
    ("data:image/png,abc", "image: data URI without base64 payload"),
    ("", "image: empty image data"),
    (b"", "image: empty image data (0 bytes)"),
    ({"bytes": None, "path": None}, "image: dict with neither bytes nor path"),
    ({"path": "/no/such.png"}, "image: file not found: /no/such.png"),
    (None, "image: missing (None)"),
    (42, "image: unsupported source type int"),
    (np.zeros((2, 2, 2, 2), dtype=np.uint8), "image: array of shape (2, 2, 2, 2)"),
], ids=["b64-garbage", "bytes-garbage", "not-b64", "missing-path", "data-uri-no-b64", "empty-str", "empty-bytes",
        "dict-empty", "dict-missing-path", "none", "int", "array-4d"])
def test_bad_sources_raise_media_error_naming_kind_and_cause(source, expected):
    with pytest.raises(MediaError) as exc:
        decode_image(source)
    assert str(exc.value).startswith(expected), str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_truncated_image_is_a_media_error_not_a_pil_trace(img):
    data = png_bytes(draw_image(5, size=(128, 128)))
    for cut in (len(data) // 2, 40):
        with pytest.raises(MediaError, match=r"^image: .*\(\d+ bytes\)$"):
            decode_image(data[:cut])
    b64 = jpeg_b64(draw_image(5, size=(128, 128)))
    with pytest.raises(MediaError, match=r"^image: .*base64 string of"):
        decode_image(b64[: len(b64) // 3 * 2])


def test_error_message_never_contains_the_data():
    payload = base64.b64encode(b"x" * 3000).decode()
    with pytest.raises(MediaError) as exc:
        decode_image(payload)
    assert len(str(exc.value)) < 120


# --- decode_media -----------------------------------------------------------------


def test_decode_media_image(img):
    part, info = decode_media(Media("image", jpeg_b64(img)), VideoRule())
    assert part["type"] == "image" and part["image"].size == img.size
    assert info == {"kind": "image", "size": [64, 64]}


def test_decode_media_video_path(tmp_path):
    path = encode_video(tmp_path / "v.mp4", 48, fps=24)
    part, info = decode_media(Media("video", str(path)), VideoRule(frames=4))
    assert part["type"] == "video" and len(part["frames"]) == 4
    assert [frame_index_of(f) for f in part["frames"]] == [6, 18, 30, 42]
    assert part["fps"] == pytest.approx(2.0)  # 4 frames over 2 s
    assert info["kind"] == "video" and info["rule"] == "uniform" and info["frames"] == 4


def test_decode_media_video_missing_file_names_the_path(tmp_path):
    with pytest.raises(MediaError, match="video: file not found: .*nope.mp4"):
        decode_media(Media("video", str(tmp_path / "nope.mp4")), VideoRule())
    with pytest.raises(MediaError, match="video: expected a path, got int"):
        decode_media(Media("video", 3), VideoRule())


def frames_b64(n: int) -> list[str]:
    return [base64.b64encode(png_bytes(draw_frame(i))).decode() for i in range(n)]


def test_stored_frames_pass_straight_through():
    stored = frames_b64(8)  # M3IT stores 8 frames per video
    part, info = decode_media(Media("frames", stored), VideoRule(frames=8))
    assert part == {"type": "video", "frames": part["frames"], "fps": None}
    assert [frame_index_of(f) for f in part["frames"]] == list(range(8))
    assert all(same(f, draw_frame(i)) for i, f in enumerate(part["frames"]))
    assert info == {"kind": "frames", "rule": "frames", "frames_requested": 8, "frames_stored": 8,
                    "frames": 8, "short": False, "indices": list(range(8)), "fps": None}


def test_stored_frames_subsampled_only_beyond_the_rule():
    stored = frames_b64(16)
    part, info = decode_media(Media("frames", stored), VideoRule(frames=8))
    assert [frame_index_of(f) for f in part["frames"]] == [1, 3, 5, 7, 9, 11, 13, 15]
    part, _ = decode_media(Media("frames", stored), VideoRule(frames=8, max_frames=4))
    assert [frame_index_of(f) for f in part["frames"]] == [2, 6, 10, 14]
    # fps has no meaning without timestamps: all frames, capped by max_frames only
    part, _ = decode_media(Media("frames", stored), VideoRule(frames=None, fps=1.0, max_frames=None))
    assert len(part["frames"]) == 16
    # fewer than asked: all of them, marked short
    part, info = decode_media(Media("frames", stored[:3]), VideoRule(frames=8))
    assert len(part["frames"]) == 3 and info["short"] is True


def test_bad_stored_frame_names_its_position():
    stored = frames_b64(8)
    stored[3] = "garbage!!"
    with pytest.raises(MediaError, match=r"^frames: frame 3 of 8: image: invalid base64"):
        decode_media(Media("frames", stored), VideoRule())
    with pytest.raises(MediaError, match="frames: empty list"):
        decode_media(Media("frames", []), VideoRule())
    with pytest.raises(MediaError, match="frames: expected a list of images, got str"):
        decode_media(Media("frames", "abc"), VideoRule())


def test_unknown_media_kind():
    with pytest.raises(MediaError, match="unknown kind 'audio'"):
        decode_media(Media("audio", b""), VideoRule())  # type: ignore[arg-type]


def test_video_rule_from_the_task_schema():
    from m3eval.tasks.schema import VideoSpec

    assert VideoRule.of(VideoSpec()) == VideoRule(frames=8, fps=None, max_frames=32)
    assert VideoRule.of(VideoSpec(fps=1.0, max_frames=16)) == VideoRule(frames=8, fps=1.0, max_frames=16)
    assert VideoRule.of({"frames": 4}) == VideoRule(frames=4, fps=None, max_frames=32)


# --- thumbnails -------------------------------------------------------------------


def test_thumbnail_of_one_image_is_small_and_not_upscaled(img):
    data = thumbnail_jpeg([img])
    thumb = Image.open(io.BytesIO(data))
    assert thumb.format == "JPEG" and thumb.size == (64, 64)
    big = thumbnail_jpeg([draw_image(1, size=(800, 400))], max_side=192)
    assert Image.open(io.BytesIO(big)).size == (192, 96)
    assert len(big) < 20_000


def test_thumbnail_of_video_frames_is_a_strip_of_four_centre_frames():
    frames = [draw_frame(i, size=(224, 224)) for i in range(8)]
    originals = [np.asarray(f).copy() for f in frames]
    thumb = Image.open(io.BytesIO(thumbnail_jpeg(frames, max_side=128)))
    assert thumb.size == (4 * 128, 128)
    tiles = [thumb.crop((k * 128, 0, (k + 1) * 128, 128)) for k in range(4)]
    assert [frame_index_of(t) for t in tiles] == [1, 3, 5, 7]
    assert all(np.array_equal(np.asarray(f), o) for f, o in zip(frames, originals))  # inputs untouched


def test_thumbnail_rejects_nothing_to_show():
    with pytest.raises(ValueError, match="at least one image"):
        thumbnail_jpeg([])


@pytest.mark.parametrize("array, fmt, grey", [
    (np.full((4, 4), 128 * 257, dtype=np.uint16), "PNG", 128),  # 16-bit PNG: 32896 / 257
    (np.full((4, 4), 65535, dtype=np.uint16), "PNG", 255),
    (np.full((4, 4), 0.5, dtype=np.float32), "TIFF", 128),  # float in [0, 1]: x 255
    (np.full((4, 4), 1000.0, dtype=np.float32), "TIFF", 255),  # out of range: clipped
])
def test_16_bit_and_float_images_are_scaled_to_8_bits(array, fmt, grey):
    """Issue 20, case 12: Pillow's convert("RGB") clipped 16-bit and float images to white or black."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    assert decode_image(buf.getvalue()).getpixel((0, 0)) == (grey, grey, grey)

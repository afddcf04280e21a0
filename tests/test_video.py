"""Video sampling with PyAV on real encoded videos: which frames, pixel identity, bad files."""
from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from m3eval.data.media import MediaError
from m3eval.data.synthetic import encode_video, frame_index_of
from m3eval.data.video import plan_indices, sample_video

# (codec, container, gop): mpeg4 with short GOPs; x264 with B-frames and scene-cut
# keyframes; long GOPs (seeks must land before the target); mkv stores no frame count.
KINDS = [("mpeg4", "mp4", None), ("libx264", "mp4", None), ("mpeg4", "mp4", 40), ("libx264", "mp4", 30),
         ("mpeg4", "mkv", 25), ("libx264", "mkv", None), ("mpeg4", "avi", None)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[tuple, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {k: encode_video(root / f"{k[0]}-{k[2]}.{k[1]}", 120, codec=k[0], gop=k[2]) for k in KINDS}


def decode_all(path: Path) -> list:
    with av.open(str(path)) as c:
        return [f.to_image() for f in c.decode(video=0)]


def test_plan_indices_are_segment_centres():
    assert plan_indices(16, 8) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert plan_indices(960, 8) == [60, 180, 300, 420, 540, 660, 780, 900]
    assert plan_indices(10, 1) == [5]
    assert plan_indices(10, 3) == [1, 5, 8]  # floor((2k+1)*10/6)
    assert plan_indices(5, 8) == [0, 1, 2, 3, 4]  # shorter than asked: every frame
    assert plan_indices(0, 8) == []
    for total in range(1, 60):
        for n in range(1, 20):
            idx = plan_indices(total, n)
            assert len(idx) == min(total, n) and idx == sorted(set(idx)) and 0 <= idx[0] and idx[-1] < total


def test_synthetic_frames_carry_their_index(videos):
    frames = decode_all(videos[("mpeg4", "mp4", None)])
    assert [frame_index_of(f) for f in frames] == list(range(120))


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k[0]}-{k[1]}-gop{k[2]}")
def test_uniform_picks_the_documented_frames_pixel_identical_to_decode_all(videos, kind):
    path = videos[kind]
    reference = decode_all(path)
    assert len(reference) == 120
    for n in (1, 3, 8, 25, 64, 120):
        frames, info = sample_video(path, frames=n)
        expected = plan_indices(120, n)
        assert info["indices"] == expected and info["frames"] == n
        assert [frame_index_of(f) for f in frames] == expected
        for f, i in zip(frames, expected):
            assert f.mode == "RGB" and np.array_equal(np.asarray(f), np.asarray(reference[i])), (n, i)
        assert "fallback" not in info, info


def test_info_records_the_rule(videos):
    frames, info = sample_video(videos[("mpeg4", "mp4", None)], frames=8)
    assert info == {
        "rule": "uniform", "frames_requested": 8, "fps_requested": None, "max_frames": None, "frames": 8,
        "short": False, "indices": [7, 22, 37, 52, 67, 82, 97, 112], "fps": pytest.approx(1.6),
        "video_fps": 24.0, "duration_s": pytest.approx(5.0), "total_frames": 120, "total_frames_estimated": False,
        "method": "seek",
    }


@pytest.mark.parametrize("codec, suffix, method", [
    ("libx264", "ts", "sequential"), ("mpeg4", "ts", "sequential"), ("mpeg2video", "mpg", "sequential"),
    ("libx264", "h264", "decode_all"),  # a raw stream: no duration, no index, cannot rewind
])
def test_formats_without_reliable_seeks_are_decoded_in_order(tmp_path, codec, suffix, method):
    # MPEG-TS/PS seek by bytes and interpolate timestamps: seeking there returned
    # broken or neighbouring frames, so these are read in order and picked by position
    path = encode_video(tmp_path / f"v.{suffix}", 120, codec=codec, gop=12)
    reference = decode_all(path)
    for n in (1, 8, 13):
        frames, info = sample_video(path, frames=n)
        assert info["method"] == method
        assert abs(info["total_frames"] - 120) <= 3  # MPEG-PS only knows its duration approximately
        assert [frame_index_of(f) for f in frames] == info["indices"]
        for f, i in zip(frames, info["indices"]):
            assert np.array_equal(np.asarray(f), np.asarray(reference[i]))


def test_frames_before_the_first_keyframe_after_a_seek_are_dropped(tmp_path):
    # seeking in MPEG-TS lands on non-keyframes, whose decode is garbage; the seek path
    # must skip to a keyframe (and step back if that is past the target)
    from m3eval.data import video as v

    path = encode_video(tmp_path / "v.ts", 120, codec="mpeg4", gop=12)
    reference = decode_all(path)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        meta = v._probe(c, stream)
        indices = plan_indices(120, 8)
        frames = v._decode_by_seeking(c, stream, indices, meta)
    assert frames is not None and [frame_index_of(f) for f in frames] == indices
    assert all(np.array_equal(np.asarray(f), np.asarray(reference[i])) for f, i in zip(frames, indices))


def test_container_without_frame_count_estimates_it(videos):
    frames, info = sample_video(videos[("mpeg4", "mkv", 25)], frames=8)
    assert info["total_frames_estimated"] is True and info["total_frames"] == 120
    assert [frame_index_of(f) for f in frames] == plan_indices(120, 8)


def test_max_frames_caps_uniform(videos):
    frames, info = sample_video(videos[("mpeg4", "mp4", None)], frames=16, max_frames=4)
    assert [frame_index_of(f) for f in frames] == plan_indices(120, 4)
    assert info["frames_requested"] == 4 and info["short"] is False


def test_short_video_gives_the_frames_it_has(tmp_path):
    path = encode_video(tmp_path / "short.mp4", 5)
    frames, info = sample_video(path, frames=8)
    assert [frame_index_of(f) for f in frames] == [0, 1, 2, 3, 4]
    assert info["frames"] == 5 and info["frames_requested"] == 8 and info["short"] is True
    single = encode_video(tmp_path / "one.mp4", 1)
    frames, info = sample_video(single, frames=8)
    assert len(frames) == 1 and info["total_frames"] == 1


def test_fps_rule_and_its_cap(videos):
    path = videos[("libx264", "mp4", None)]  # 120 frames at 24 fps: 5 s
    frames, info = sample_video(path, frames=None, fps=2.0)
    assert info["rule"] == "fps" and info["frames"] == 10 and info["fps"] == pytest.approx(2.0)
    assert [frame_index_of(f) for f in frames] == [6, 18, 30, 42, 54, 66, 78, 90, 102, 114]  # one every 0.5 s
    frames, info = sample_video(path, frames=None, fps=10.0, max_frames=16)  # 50 wanted, capped to 16
    assert info["frames"] == 16 and info["frames_requested"] == 16 and info["max_frames"] == 16
    assert [frame_index_of(f) for f in frames] == plan_indices(120, 16)  # still spans the whole video
    assert info["fps"] == pytest.approx(16 / 5)
    # fps takes precedence over frames
    _, info = sample_video(path, frames=8, fps=0.4)
    assert info["rule"] == "fps" and info["frames"] == 2
    # very low fps still gives one frame
    _, info = sample_video(path, frames=None, fps=0.01)
    assert info["frames"] == 1 and info["indices"] == [60]


def test_variable_frame_rate_samples_evenly_in_time(tmp_path):
    # 40 frames at 10 fps, then 40 frames at 50 fps: 4.8 s
    pts, t = [], 0
    for i in range(80):
        pts.append(t)
        t += 100 if i < 40 else 20
    for suffix in ("mp4", "mkv"):
        path = encode_video(tmp_path / f"vfr.{suffix}", 80, fps=25, pts=pts, time_base=Fraction(1, 1000))
        frames, info = sample_video(path, frames=8)
        got = [frame_index_of(f) for f in frames]
        assert len(got) == 8 and got == sorted(set(got))
        duration = info["duration_s"]
        for k, i in enumerate(got):
            target = (2 * k + 1) / 16 * duration
            # within one frame (at most 100 ms) of the target time
            assert abs(pts[i] / 1000 - target) <= 0.1 + 1e-9, (suffix, k, i, target)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(MediaError, match=f"^video: file not found: {tmp_path}/nope.mp4$"):
        sample_video(tmp_path / "nope.mp4")
    with pytest.raises(MediaError, match="video: file not found"):
        sample_video(tmp_path)  # a directory


# seeded: unseeded random bytes now and then parse as a container with no video stream (another message)
@pytest.mark.parametrize("content", [b"", b"hello world" * 100, random.Random(5000).randbytes(5000)],
                         ids=["empty", "text", "random"])
def test_undecodable_file_names_the_path(tmp_path, content):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaError, match=f"^video: (cannot decode {path}: .+|no video stream in {path}$)"):
        sample_video(path)


def test_truncated_mp4_is_a_media_error(tmp_path):
    data = encode_video(tmp_path / "full.mp4", 60).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: nothing can be read
    with pytest.raises(MediaError, match=f"video: cannot decode {cut}"):
        sample_video(cut)


def test_truncated_mkv_gives_the_frames_that_decode(tmp_path):
    data = encode_video(tmp_path / "full.mkv", 120, gop=10).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])  # the header still claims 5 s
    decodable = decode_all(cut)
    assert 0 < len(decodable) < 120
    frames, info = sample_video(cut, frames=8)
    assert info["total_frames"] == len(decodable) and "fallback" in info
    assert [frame_index_of(f) for f in frames] == plan_indices(len(decodable), 8)
    for f, i in zip(frames, info["indices"]):
        assert np.array_equal(np.asarray(f), np.asarray(decodable[i]))


def test_corrupt_packets_do_not_crash(tmp_path):
    data = bytearray(encode_video(tmp_path / "full.avi", 120, gop=10).read_bytes())
    rng = np.random.default_rng(0)
    start = len(data) // 3
    data[start:start + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    path = tmp_path / "corrupt.avi"
    path.write_bytes(bytes(data))
    frames, info = sample_video(path, frames=8)
    assert len(frames) == 8 and all(f.size == (64, 64) for f in frames)


def test_each_video_is_opened_once_and_closed(videos, tmp_path, monkeypatch):
    opened = []
    real_open = av.open

    def spy(*args, **kwargs):  # the real av.open, recorded
        c = real_open(*args, **kwargs)
        opened.append(c)
        return c

    monkeypatch.setattr(av, "open", spy)
    fd_dir = Path("/proc/self/fd")
    before = len(list(fd_dir.iterdir()))
    data = encode_video(tmp_path / "full.mkv", 60, gop=10).read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])
    (tmp_path / "bad.mp4").write_bytes(b"junk" * 100)
    opened.clear()
    for path in (videos[("libx264", "mp4", None)], tmp_path / "cut.mkv"):  # seek path, fallback path
        sample_video(path, frames=8)
    with pytest.raises(MediaError):
        sample_video(tmp_path / "bad.mp4")
    assert len(opened) == 2  # the bad file never opened as a container
    for c in opened:
        with pytest.raises(IndexError):
            c.streams.video[0]  # a closed container has no streams left
    assert len(list(fd_dir.iterdir())) == before


@pytest.mark.parametrize("kwargs, message", [
    ({"frames": None, "fps": None}, "needs frames=N or fps=F"),
    ({"frames": 0}, "frames must be a positive integer"),
    ({"frames": 2.5}, "frames must be a positive integer"),
    ({"frames": None, "fps": -1.0}, "fps must be a positive number"),
    ({"frames": None, "fps": float("nan")}, "fps must be a positive number"),
    ({"max_frames": 0}, "max_frames must be a positive integer"),
])
def test_bad_arguments(videos, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_video(videos[("mpeg4", "mp4", None)], **kwargs)

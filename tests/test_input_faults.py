"""Bad input that must stay a per-sample error (issue 10, kept behaviours): corrupt media of
every kind, decompression bombs (Pillow's limit), and templates that try to leave Jinja's
sandbox. Each is one sample's error, counted; the other samples run."""
from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from m3eval.data.media import MediaError, decode_image
from m3eval.data.synthetic import draw_image
from m3eval.prompts import render
from m3eval.results import read_jsonl

ROOT = Path(__file__).resolve().parents[1]


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header claiming 10^10 pixels (a few dozen bytes; Pillow must refuse it
    before allocating anything)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    return draw_image(3, size=(96, 96))


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(MediaError, match=r"^image: too large to decode safely \(\d+ bytes\)"):
        decode_image(bomb_png())
    with pytest.raises(MediaError, match=r"^image: too large to decode safely \(base64 string"):
        decode_image(base64.b64encode(bomb_png()).decode())
    assert Image.MAX_IMAGE_PIXELS is not None  # nobody switched Pillow's guard off


@pytest.mark.parametrize("kind", ["truncated.png", "truncated.jpg", "empty.png", "text.png", "bomb.png"])
def test_bad_image_files_are_media_errors_naming_the_file(tmp_path, picture, kind):
    data = {"truncated.png": _png(picture)[:300], "truncated.jpg": _jpeg(picture)[:400], "empty.png": b"",
            "text.png": b"<html>not a picture</html>", "bomb.png": bomb_png()}[kind]
    f = tmp_path / kind
    f.write_bytes(data)
    with pytest.raises(MediaError) as exc:
        decode_image(str(f))
    assert str(exc.value).startswith("image: ")
    assert str(f) in str(exc.value) or "bytes" in str(exc.value)
    assert len(str(exc.value)) < 300  # one line, never the data


def test_wrong_extension_is_decoded_by_content(tmp_path, picture):
    f = tmp_path / "really_a_png.jpg"
    f.write_bytes(_png(picture))
    assert decode_image(str(f)).tobytes() == picture.convert("RGB").tobytes()


def test_every_kind_of_corrupt_image_in_a_run_is_a_counted_sample_error(tiny_model, tmp_path, picture):
    """A real `m3eval run` over M3IT rows whose images are broken in each way: the run
    finishes (exit 0), each bad row is one counted error naming the image problem."""
    rows = [json.loads(line) for line in (ROOT / "tasks/demo/data/m3it_caption_zh.jsonl").read_text().splitlines()][:7]
    bad = {1: _png(picture)[:300], 2: _jpeg(picture)[:400], 3: b"", 4: b"GIF89a garbage", 5: bomb_png()}
    for i, data in bad.items():
        rows[i]["image_base64_str"] = [base64.b64encode(data).decode()]
    f = tmp_path / "rows.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    r = subprocess.run([sys.executable, "-m", "m3eval", "run", "--model-args", f"pretrained={tiny_model}",
                        "--tasks", "demo_m3it_zh", "--dataset-override", f"demo_m3it_zh={f}", "--output",
                        str(tmp_path), "--run-name", "r", "--threads", "1", "--max-new-tokens", "4"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    t = json.loads((tmp_path / "r" / "results.json").read_text())["tasks"]["demo_m3it_zh"]
    assert t["n_samples"] == 7 and t["n_errors"] == len(bad)
    errors = {rec["id"]: rec["error"] for rec in read_jsonl(tmp_path / "r" / "samples" / "demo_m3it_zh.jsonl")}
    assert errors["0"] is None and errors["6"] is None
    assert all(errors[str(i)] and "image" in errors[str(i)] for i in bad)
    assert "too large to decode safely" in errors["5"]


# --- the Jinja sandbox -----------------------------------------------------------------------------

@pytest.mark.parametrize("template", [
    "{{ question.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ question.format.__globals__ }}",
    "{{ options.__self__ }}",
    "{{ letters.__class__.__init__.__globals__['os'] }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ question|attr('__class__') }}",
])
def test_templates_cannot_leave_the_sandbox(template):
    with pytest.raises(KeyError) as exc:
        out = render(template, {"question": "q"}, ["a", "b"])
        pytest.fail(f"rendered {out!r}")
    msg = str(exc.value)
    assert any(w in msg for w in ("SecurityError", "unsafe", "undefined", "has no attribute")), msg
    assert "<class" not in msg and "<module" not in msg and "uid=" not in msg


def test_the_sandbox_still_renders_ordinary_templates():
    assert render("{{ question|upper }} {{ options }} {{ letters|join(',') }}", {"question": "q"}, ["a", "b"]) == \
        "Q A. a\nB. b A,B"

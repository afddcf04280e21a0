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


# --- text fields: the data's own text, never str() of a typed value (issue 20, case 7) ------------

def _task_file(folder: Path, data: str, doc: str = "") -> Path:
    path = folder / "task.yaml"
    path.write_text(f"task: t\ndataset: {{path: {data}}}\n"
                    f"doc: {{prompt: '{{{{ q }}}}', references: a, id: id{doc}}}\nmetrics: [{{name: exact_match}}]\n")
    return path


def _samples(folder: Path, data: str, doc: str = "") -> dict:
    from m3eval.data.task_samples import load_task_data
    from m3eval.tasks.loader import load_file
    (spec,) = load_file(_task_file(folder, data, doc))
    return {s.id: s for s in load_task_data(spec, None, "default").samples}


def _score(folder: Path, preds: Path, *extra: str) -> subprocess.CompletedProcess:
    """`m3eval score --task t --predictions F` as a user runs it, on the task file in `folder`."""
    return subprocess.run([sys.executable, "-m", "m3eval", "score", "--include-path", str(folder), "--task", "t",
                           "--predictions", str(preds), "--output", str(folder / "out"), *extra], cwd=folder,
                          capture_output=True, text=True, timeout=300)


def test_a_csv_number_column_with_a_blank_cell_keeps_its_text(tmp_path):
    """pandas read an int column with one blank cell as float64: the reference `2` became "2.0"
    (and exact match scored the right answer 0). Every CSV cell is now read as text."""
    (tmp_path / "d.csv").write_text("id,q,a\na,x,2\nb,y,\nc,z,10\n")
    got = _samples(tmp_path, "d.csv")
    assert got["a"].references == ["2"] and got["c"].references == ["10"]
    assert got["b"].failure is not None and got["b"].failure.type == "MissingReferences"  # blank: no references


def test_csv_ids_with_leading_zeros_stay_as_written(tmp_path):
    """`001` and `007` were read as the numbers 1 and 7: ids no prediction file or reference set uses."""
    (tmp_path / "d.csv").write_text("id,q,a\n001,x,007\n007,y,0.50\n")
    got = _samples(tmp_path, "d.csv")
    assert set(got) == {"001", "007"}
    assert got["001"].references == ["007"] and got["007"].references == ["0.50"]


def test_json_numbers_keep_their_own_text(tmp_path):
    """Arrow reads a JSON list [2, 2.5] as float64: the answer 2 became "2.0". An integral number is
    written without ".0" (JSON has one number type), others in their shortest form."""
    (tmp_path / "d.jsonl").write_text('{"id": 1, "q": "x", "a": [2, 2.5]}\n{"id": 2, "q": "y", "a": [3]}\n'
                                      '{"id": 3, "q": "z", "a": [0.1, 1e300]}\n')
    got = _samples(tmp_path, "d.jsonl")
    assert got["1"].references == ["2", "2.5"] and got["2"].references == ["3"]
    assert got["3"].references == ["0.1", "1e+300"]


def test_a_null_among_the_answers_is_no_answer(tmp_path):
    """A null in an answers list became the reference "None" (a model answering "None" scored 1);
    it is left out, and a row left with none is the counted "no references" error, in `score` too."""
    (tmp_path / "d.jsonl").write_text('{"id": "a", "q": "x", "a": ["red", null], "c": null}\n'
                                      '{"id": "b", "q": "y", "a": [null], "c": "k"}\n')
    got = _samples(tmp_path, "d.jsonl", ", cluster: c")
    assert got["a"].references == ["red"] and got["a"].failure is None
    assert got["a"].cluster is None and got["b"].cluster == "k"  # a null cluster: a cluster of its own
    assert got["b"].failure is not None and got["b"].failure.type == "MissingReferences"
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "a", "prediction": "red"}\n{"id": "b", "prediction": "None"}\n')
    r = _score(tmp_path, preds)
    assert r.returncode == 0, r.stderr[-2000:]
    t = json.loads((tmp_path / "out" / "p" / "results.json").read_text())["tasks"]["t"]
    assert t["n_samples"] == 2 and t["n_errors"] == 1


def test_a_null_between_choices_fails_its_row(tmp_path):
    """A null option between others would move the later options to other letters; trailing
    nulls (padding to a fixed number of options) are left out."""
    (tmp_path / "d.jsonl").write_text('{"id": "a", "q": "x", "a": "B", "o": ["p", "q", null]}\n'
                                      '{"id": "b", "q": "y", "a": "B", "o": ["p", null, "q"]}\n')
    got = _samples(tmp_path, "d.jsonl", ", choices: o")
    assert got["a"].choices == ["p", "q"] and got["a"].failure is None
    assert got["b"].failure is not None and "doc.choices (o) has a null at item 1" in got["b"].failure.message


def test_a_binary_reference_is_a_counted_row_error_naming_the_field(tmp_path):
    """A parquet binary column became the reference "b'red'"; bytes are not text: the row fails,
    counted, naming the field; the other rows run."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"id": ["a"], "q": ["x"], "a": pa.array([b"red"], pa.binary()), "b": ["red"]}),
                   tmp_path / "d.parquet")
    got = _samples(tmp_path, "d.parquet")
    failure = got["a"].failure
    assert failure is not None and failure.type == "NotText" and failure.stage == "data"
    assert "doc.references (a) holds binary data, not text" in failure.message
    assert "b'red'" not in got["a"].references


# --- non-UTF-8 data and predictions files (issue 20, case 24) ---------------------------------------

@pytest.mark.parametrize("name,text,line", [
    ("d.csv", "id,q,a\n1,x,ok\n2,y,caf\xe9\n", 3),
    ("d.jsonl", '{"id": "1", "q": "x", "a": "ok"}\n{"id": "2", "q": "y", "a": "caf\xe9"}\n', 2)], ids=["csv", "jsonl"])
def test_a_data_file_that_is_not_utf8_is_named_with_its_line(tmp_path, name, text, line):
    """A Latin-1 CSV failed as "DatasetGenerationError: An error occurred while generating the dataset";
    a Latin-1 JSONL was read in, then raised a bare UnicodeDecodeError (a traceback) on its row."""
    from m3eval.errors import DataError
    (tmp_path / name).write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError) as exc:
        _samples(tmp_path, name)
    assert f"{tmp_path / name}:{line}: not UTF-8 text" in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("bad", ["predictions", "data"])
def test_score_names_the_file_that_is_not_utf8(tmp_path, bad):
    """`m3eval score --task T --predictions F`: a Latin-1 predictions file, or task data (a CSV given
    with --dataset-override), is one line naming the file and line, a non-zero exit, no traceback."""
    (tmp_path / "d.csv").write_text("id,q,a\n1,x,ok\n2,y,caf\u00e9\n")
    (tmp_path / "bad.csv").write_bytes("id,q,a\n1,x,ok\n2,y,caf\xe9\n".encode("latin-1"))
    _task_file(tmp_path, "d.csv")
    preds = tmp_path / "p.jsonl"
    preds.write_bytes(('{"id": "1", "prediction": "ok"}\n{"id": "2", "prediction": "caf\xe9"}\n')
                      .encode("latin-1" if bad == "predictions" else "utf-8"))
    r = _score(tmp_path, preds, *(["--dataset-override", f"t={tmp_path / 'bad.csv'}"] if bad == "data" else []))
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    named = f"{preds}:2" if bad == "predictions" else f"{tmp_path / 'bad.csv'}:3: not UTF-8 text"
    errors = [line for line in r.stderr.splitlines() if line.startswith("m3eval: error:")]
    assert len(errors) == 1 and named in errors[0], r.stderr[-2000:]

"""Local task data: media paths resolve against the data's folder and never leave it,
`dataset.split` on a single file is refused rather than ignored, empty files and rows
without references are named (issues 8.9, 8.10, 10.4, 10.5, 10.10)."""
from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from m3eval.data.media import VideoRule
from m3eval.data.sources import DataError, load_dataset_rows
from m3eval.data.synthetic import draw_image, encode_video
from m3eval.data.task_samples import load_task_data
from m3eval.run.prefetch import prepare
from m3eval.tasks.loader import load_file
from m3eval.tasks.schema import DatasetSpec


def task(folder: Path, data: str = "data/rows.jsonl", doc: str = "images: image") -> Path:
    """A task file; `data` and `doc` are extra flow-mapping entries (`path, split: x`)."""
    path = folder / "task.yaml"
    doc = f", {doc}" if doc else ""
    path.write_text(f"task: t\ndataset: {{path: {data}}}\n"
                    f"doc: {{prompt: '{{{{ q }}}}', references: a, id: id{doc}}}\nmetrics: [{{name: exact_match}}]\n")
    return path


def rows(folder: Path, items: list[dict], name: str = "rows.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in items))
    return folder / name


def samples_of(yaml: Path, override: str | None = None):
    (spec,) = load_file(yaml)
    return {s.id: s for s in load_task_data(spec, None, "default", override).samples}


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """tasks/task.yaml, tasks/data/rows.jsonl with images in tasks/data/img/, and a secret outside."""
    data = tmp_path / "tasks" / "data"
    (data / "img").mkdir(parents=True)
    draw_image(1).save(data / "img" / "cat.png")
    (tmp_path / "secret").mkdir()
    draw_image(2).save(tmp_path / "secret" / "x.png")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    draw_image(3).save(elsewhere / "cat.png")  # a file of the same name in the cwd must not be read
    (elsewhere / "img").mkdir()
    draw_image(3).save(elsewhere / "img" / "cat.png")
    monkeypatch.chdir(elsewhere)
    return tmp_path


def test_relative_image_paths_resolve_against_the_data_folder(layout):
    data = layout / "tasks" / "data"
    rows(data, [{"id": "a", "q": "?", "a": "x", "image": "img/cat.png"},
                {"id": "b", "q": "?", "a": "x", "image": "./img/cat.png"},
                {"id": "c", "q": "?", "a": "x", "image": ["img/cat.png", "img/cat.png"]}])
    got = samples_of(task(layout / "tasks"))
    for sid in "abc":
        p = prepare(got[sid], VideoRule(), None)
        assert p.error is None, p.error
        img = p.message[0]["image"]
        assert img.tobytes() == draw_image(1).convert("RGB").tobytes()  # the data folder's cat, not the cwd's


@pytest.mark.parametrize("path", ["../../secret/x.png", "img/../../../secret/x.png", "ABS"])
def test_image_paths_outside_the_data_folder_fail_their_sample(layout, path):
    path = str(layout / "secret" / "x.png") if path == "ABS" else path
    data = layout / "tasks" / "data"
    rows(data, [{"id": "ok", "q": "?", "a": "x", "image": "img/cat.png"},
                {"id": "bad", "q": "?", "a": "x", "image": path}])
    got = samples_of(task(layout / "tasks"))
    media = layout / "run" / "media"
    bad = prepare(got["bad"], VideoRule(), media)
    assert bad.message is None and "leaves the data folder" in str(bad.error)
    assert "doc.media_root" in str(bad.error)
    assert not media.exists()  # nothing copied
    assert prepare(got["ok"], VideoRule(), media).error is None


def test_paths_with_whitespace_are_paths_and_confined_too(layout):
    """Issue 20, case 1: a path with a space ("My Pictures") is still a path: resolved against the
    data folder and confined to it, never read from the current directory or outside."""
    data, cwd = layout / "tasks" / "data", layout / "cwd"
    (layout / "My Pictures").mkdir()
    draw_image(2).save(layout / "My Pictures" / "x.png")
    for folder in (data, cwd):
        (folder / "priv dir").mkdir()
        draw_image(4 if folder == data else 3).save(folder / "priv dir" / "x.png")
    (cwd / "priv dir" / "xpng").write_bytes((cwd / "priv dir" / "x.png").read_bytes())  # no '.': base64-like
    rows(data, [{"id": "abs", "q": "?", "a": "x", "image": str(layout / "My Pictures" / "x.png")},
                {"id": "in", "q": "?", "a": "x", "image": "priv dir/x.png"},
                {"id": "cwd", "q": "?", "a": "x", "image": "priv dir/xpng"}])
    got = samples_of(task(layout / "tasks"))
    assert "leaves the data folder" in str(prepare(got["abs"], VideoRule(), None).error)
    inside = prepare(got["in"], VideoRule(), None)  # the data folder's file, not the cwd's
    assert inside.error is None and inside.message[0]["image"].tobytes() == draw_image(4).convert("RGB").tobytes()
    assert prepare(got["cwd"], VideoRule(), None).message is None  # the cwd's file is never opened


def test_a_link_out_of_the_data_folder_is_refused_unless_the_task_allows_it(layout):
    """Issue 20, case 4: a symbolic link inside the data folder to a file outside it is refused by
    default (the file it really is must be inside too); `doc.follow_links: true` allows it."""
    data = layout / "tasks" / "data"
    (data / "img" / "out.png").symlink_to(layout / "secret" / "x.png")
    (data / "img" / "in.png").symlink_to(data / "img" / "cat.png")
    rows(data, [{"id": "out", "q": "?", "a": "x", "image": "img/out.png"},
                {"id": "in", "q": "?", "a": "x", "image": "img/in.png"}])
    got = samples_of(task(layout / "tasks"))
    err = str(prepare(got["out"], VideoRule(), None).error)
    # the link's target by its name: a recorded message names no path of the machine (issue 23)
    assert "is a link to x.png, outside" in err and str(layout) not in err and "doc.follow_links: true" in err
    assert prepare(got["in"], VideoRule(), None).error is None  # a link that stays inside is fine
    allowed = samples_of(task(layout / "tasks", doc="images: image, follow_links: true"))
    out = prepare(allowed["out"], VideoRule(), None)
    assert out.error is None and out.message[0]["image"].tobytes() == draw_image(2).convert("RGB").tobytes()


def test_stored_frames_given_as_paths_are_confined_too(layout):
    rows(layout / "tasks" / "data", [{"id": "f", "q": "?", "a": "x", "frames": ["img/cat.png", "../../secret/x.png"]},
                                     {"id": "g", "q": "?", "a": "x", "frames": ["img/cat.png", "img/cat.png"]}])
    got = samples_of(task(layout / "tasks", doc="frames: frames"))
    assert "path '../../secret/x.png' leaves the data folder" in str(prepare(got["f"], VideoRule(), None).error)
    assert len(prepare(got["g"], VideoRule(), None).message[0]["frames"]) == 2


def test_media_root_allows_a_named_folder(layout):
    data = layout / "tasks" / "data"
    rows(data, [{"id": "s", "q": "?", "a": "x", "image": "../../secret/x.png"}])
    got = samples_of(task(layout / "tasks", doc="images: image, media_root: ../secret"))
    p = prepare(got["s"], VideoRule(), None)
    assert p.error is None and p.message[0]["image"].tobytes() == draw_image(2).convert("RGB").tobytes()


def test_video_paths_are_confined_to_the_data_folder_and_video_root(layout):
    data = layout / "tasks" / "data"
    encode_video(data / "clip.mp4", 8, fps=8)
    encode_video(layout / "secret" / "v.mp4", 8, fps=8)
    rows(data, [{"id": "in", "q": "?", "a": "x", "video": "clip.mp4"},
                {"id": "out", "q": "?", "a": "x", "video": "../../secret/v.mp4"}])
    got = samples_of(task(layout / "tasks", doc="video: video"))
    assert prepare(got["in"], VideoRule(frames=2), None).error is None
    out = prepare(got["out"], VideoRule(), None).error
    assert "video: path '../../secret/v.mp4' leaves the data folder" in str(out)
    rows(data, [{"id": "v", "q": "?", "a": "x", "video": "v.mp4"}])
    rooted = samples_of(task(layout / "tasks", doc="video: video, video_root: ../secret"))
    assert prepare(rooted["v"], VideoRule(frames=2), None).error is None


def test_base64_images_are_not_taken_for_paths(layout):
    import base64
    import io
    buf = io.BytesIO()
    draw_image(4).save(buf, format="JPEG")  # JPEG base64 starts with "/9j/": not an absolute path
    b64 = base64.b64encode(buf.getvalue()).decode()
    rows(layout / "tasks" / "data", [{"id": "j", "q": "?", "a": "x", "image": b64}])
    p = prepare(samples_of(task(layout / "tasks"))["j"], VideoRule(), None)
    assert p.error is None and p.message[0]["image"].size == draw_image(4).size


def test_a_row_without_references_is_a_counted_sample_error(tmp_path):
    rows(tmp_path / "data", [{"id": "ok", "q": "?", "a": "x"}, {"id": "none", "q": "?", "a": None},
                             {"id": "empty", "q": "?", "a": []}, {"id": "blank", "q": "?", "a": " "}])
    got = samples_of(task(tmp_path, doc=""))
    assert got["ok"].failure is None
    for sid, row in (("none", 1), ("empty", 2), ("blank", 3)):
        err = prepare(got[sid], VideoRule(), None).error
        assert err is got[sid].failure and (err.stage, err.type) == ("data", "MissingReferences")
        assert err.message == f"row {row} (id '{sid}') has no references (doc.references: a)"


def test_external_predictions_count_a_row_without_references_as_a_run_does(tmp_path):
    """Issue 20, case 10: `score --predictions` scored such a row 0 without counting it; a run counts
    it as a failed sample. One path (Prediction.for_sample), one behaviour."""
    from m3eval.scoring.external import score_external
    rows(tmp_path / "data", [{"id": "ok", "q": "?", "a": "x"}, {"id": "none", "q": "?", "a": None}])
    (spec,) = load_file(task(tmp_path, doc=""))
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "ok", "prediction": "x"}\n{"id": "none", "prediction": "x"}\n')
    results, code = score_external(spec, preds, tmp_path / "out", None, seed=0)
    entry = results.tasks["t"]
    assert (entry.n_samples, entry.n_errors, entry.metrics["exact_match"].value) == (2, 1, 0.5)
    records = [json.loads(line) for line in (tmp_path / "out" / "p" / "samples" / "t.jsonl").read_text().splitlines()]
    assert "has no references" in records[1]["error"] and records[0]["error"] is None


@pytest.mark.parametrize("content,name", [("", "e.jsonl"), ("\n\n", "w.jsonl"), ("", "e.csv"),
                                          ("id,q,a\n", "h.csv"), ("", "e.json")])
def test_an_empty_data_file_says_it_has_no_rows(tmp_path, content, name):
    (tmp_path / name).write_text(content)
    (spec,) = load_file(task(tmp_path, data=name, doc=""))
    with pytest.raises(DataError, match=rf"{name}: the file has no rows"):
        load_dataset_rows(spec.dataset, tmp_path, "t")


def test_an_empty_m3it_raw_file_says_it_has_no_rows(tmp_path):
    folder = tmp_path / "M3IT" / "data" / "vqa" / "okvqa"
    folder.mkdir(parents=True)
    (folder / "instructions.json").write_text(json.dumps(["Answer."]))
    (folder / "val_v2.jsonl").write_text("")
    spec = DatasetSpec(path=str(tmp_path / "M3IT"), name="okvqa", split="validation", format="m3it")
    with pytest.raises(DataError, match=r"split 'validation' has no rows \(read: .*val_v2\.jsonl"):
        load_dataset_rows(spec, tmp_path, "t")


def test_an_empty_parquet_file_says_it_has_no_rows(tmp_path):
    datasets.Dataset.from_dict({"id": [], "q": [], "a": []}).to_parquet(str(tmp_path / "e.parquet"))
    (spec,) = load_file(task(tmp_path, data="e.parquet", doc=""))
    with pytest.raises(DataError, match=r"e\.parquet: the file has no rows"):
        load_dataset_rows(spec.dataset, tmp_path, "t")


def test_a_split_on_a_single_file_is_refused_not_ignored(tmp_path):
    rows(tmp_path / "data", [{"id": "a", "q": "?", "a": "x"}])
    (spec,) = load_file(task(tmp_path, data="data/rows.jsonl, split: validation", doc=""))
    with pytest.raises(DataError, match=r"dataset.split 'validation': .*rows\.jsonl is a single json file, "
                                        r"which has no splits"):
        load_dataset_rows(spec.dataset, tmp_path, "t")
    saved = tmp_path / "saved"
    datasets.Dataset.from_list([{"id": "a", "q": "?", "a": "x"}]).save_to_disk(str(saved))
    with pytest.raises(DataError, match="holds one saved Dataset, which has no splits"):
        load_dataset_rows(spec.dataset.model_copy(update={"path": str(saved)}), tmp_path, "t")


def test_a_split_is_honoured_where_the_data_has_splits(tmp_path):
    dd = tmp_path / "dd"
    datasets.DatasetDict({"validation": datasets.Dataset.from_list([{"id": "v", "q": "?", "a": "x"}]),
                          "test": datasets.Dataset.from_list([{"id": "t", "q": "?", "a": "x"}])}).save_to_disk(str(dd))
    assert list(samples_of(task(tmp_path, data="dd, split: validation", doc=""))) == ["v"]
    assert list(samples_of(task(tmp_path, data="dd", doc=""))) == ["t"]


def test_an_override_file_replaces_the_split(tmp_path):
    """--dataset-override with one file stands for the task's split (it has no others)."""
    rows(tmp_path / "data", [{"id": "o", "q": "?", "a": "x"}], "over.jsonl")
    yaml = task(tmp_path, data="org/hub-dataset, split: val2014", doc="")
    assert list(samples_of(yaml, str(tmp_path / "data" / "over.jsonl"))) == ["o"]


def test_bad_rows_are_counted_in_a_real_run(tiny_model, layout):
    """End to end: a row without references and a row whose image leaves the data folder
    fail alone, are counted in n_errors and name themselves; the other rows are scored."""
    from m3eval.run.pipeline import RunConfig, evaluate
    from m3eval.results import read_jsonl
    rows(layout / "tasks" / "data", [{"id": "ok", "q": "?", "a": "x", "image": "img/cat.png"},
                                     {"id": "norefs", "q": "?", "a": [], "image": "img/cat.png"},
                                     {"id": "escape", "q": "?", "a": "x", "image": "../../secret/x.png"}])
    task(layout / "tasks")
    results, failures = evaluate(RunConfig(tasks=["t"], output=layout / "out", run_name="r", progress=False,
                                           model_args={"pretrained": str(tiny_model)},
                                           include_paths=[layout / "tasks"]))
    entry = results.tasks["t"]
    assert failures == [] and entry.n_samples == 3 and entry.n_errors == 2
    errors = {p["id"]: p["error"] for p in read_jsonl(layout / "out" / "r" / "predictions" / "t.jsonl")}
    assert errors["ok"] is None and "has no references" in errors["norefs"]["message"]
    assert "leaves the data folder" in errors["escape"]["message"]
    thumbnails = [p.name.split("-")[0] for p in (layout / "out" / "r" / "media" / "t").iterdir()]
    assert thumbnails == ["ok"]  # nothing copied for the failed rows


def test_huge_images_and_files_fail_their_own_sample_without_being_read(tiny_model, layout):
    """Issue 20, cases 13 and 14: 13000 x 13000 PNGs (0.2 MB each, 169 M pixels: under Pillow's
    own refusal at 179 M) used to be decoded, and a batch of them killed the run with a
    MemoryError in the decoding worker; a 3 GB file named .png was read whole. Each is now its
    sample's counted error, refused from the header or the file size, and the rest is scored."""
    import tracemalloc

    from PIL import Image

    from m3eval.data.media import decode_image
    from m3eval.errors import MediaError
    from m3eval.results import read_jsonl
    from m3eval.run.pipeline import RunConfig, evaluate
    img = layout / "tasks" / "data" / "img"
    Image.new("L", (13000, 13000)).save(img / "huge.png")
    with open(img / "big.png", "wb") as f:
        f.truncate(3 << 30)  # sparse: 3 GB long, nothing on disk
    tracemalloc.start()
    for name in ("huge.png", "big.png"):
        with pytest.raises(MediaError, match="PIL.Image.MAX_IMAGE_PIXELS"):
            decode_image(img / name)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 << 20, peak  # neither the pixels (169 MB) nor the file (3 GB) were taken in
    rows(layout / "tasks" / "data", [{"id": "ok", "q": "?", "a": "x", "image": "img/cat.png"}]
         + [{"id": f"huge{k}", "q": "?", "a": "x", "image": "img/huge.png"} for k in range(4)]
         + [{"id": "big", "q": "?", "a": "x", "image": "img/big.png"}])
    task(layout / "tasks")
    results, failures = evaluate(RunConfig(tasks=["t"], output=layout / "out", run_name="r", progress=False,
                                           model_args={"pretrained": str(tiny_model)}, batch_size=8,
                                           include_paths=[layout / "tasks"]))
    entry = results.tasks["t"]
    assert failures == [] and entry.n_samples == 6 and entry.n_errors == 5
    errors = {p["id"]: p["error"] for p in read_jsonl(layout / "out" / "r" / "predictions" / "t.jsonl")}
    assert errors["ok"] is None
    assert all("169,000,000 pixels is over the bound" in errors[f"huge{k}"]["message"] for k in range(4))
    assert "3,221,225,472 bytes" in errors["big"]["message"] and "not read" in errors["big"]["message"]


def test_a_media_column_missing_from_the_data_is_one_line_naming_it(tmp_path):
    """Issue 21 (bad input): a dataset whose columns do not match the YAML is one line naming the
    task, the missing column and the columns found, for media columns too (read lazily, a wrong
    name used to fail every sample with KeyError: 'image' and the run 'scored nothing')."""
    from m3eval.errors import SampleError
    rows(tmp_path / "data", [{"id": "a", "q": "?", "a": "x", "picture": "img/cat.png"}])
    with pytest.raises(SampleError, match=r"task t: no field 'image' \(doc.images; columns: id, q, a, picture\)"):
        samples_of(task(tmp_path))

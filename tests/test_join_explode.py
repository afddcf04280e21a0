"""dataset.join (a second table lending each row its columns; media read from it, lazily) and doc.explode
(one sample per item of a row's parallel lists): tasks read hub tables as they are (GQA's two configs,
OCR-VQA's covers with their question lists), no prepared file. Local tables here, the real loaders."""
from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml

from m3eval.data.fingerprint import data_changed
from m3eval.data.media import decode_image
from m3eval.data.samples import SampleError, build_samples
from m3eval.data.synthetic import draw_image
from m3eval.data.task_samples import load_task_data
from m3eval.errors import DataError, TaskError
from m3eval.tasks.loader import load_file
from m3eval.tasks.schema import TaskSpec

SIZE = (32, 32)
QUESTIONS = [{"qid": "q0", "img": "a", "question": "What color?", "answer": "red"},
             {"qid": "q1", "img": "b", "question": "How many?", "answer": "2"},
             {"qid": "q2", "img": "a", "question": "Is it big?", "answer": "no"}]
IMAGE_FEATS = {"qid": datasets.Value("string"), "image": datasets.Image(), "caption": datasets.Value("string")}


def _images(keys: list[str]) -> list[dict]:
    # `qid` is the images table's key (a name the questions table also has: the question's own wins)
    return [{"qid": k, "image": draw_image(10 + i, SIZE), "caption": f"picture {k}"} for i, k in enumerate(keys)]


def _write(path: Path, rows: list[dict], feats: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = datasets.Dataset.from_list(rows, features=datasets.Features(feats) if feats else None)
    ds.to_parquet(str(path))
    return path


def _task(tmp_path: Path, doc: dict, dataset: dict, name: str = "t") -> TaskSpec:
    """A task YAML in tmp_path, loaded as the registry loads it (relative paths: the YAML's folder)."""
    body = {"task": name, "dataset": dataset, "doc": doc, "metrics": [{"name": "exact_match"}]}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    (spec,) = load_file(path)
    assert isinstance(spec, TaskSpec)
    return spec


def _joined(tmp_path: Path, images: list[dict], questions: list[dict] = QUESTIONS) -> TaskSpec:
    _write(tmp_path / "questions.parquet", questions)
    _write(tmp_path / "images.parquet", images, IMAGE_FEATS)
    doc = {"id": "qid", "prompt": "{{ question }} ({{ caption }})", "references": "answer", "images": "image",
           "cluster": "img"}
    return _task(tmp_path, doc, {"path": "questions.parquet",
                                 "join": {"path": "images.parquet", "field": "img", "key": "qid"}})


# ---- join ------------------------------------------------------------------------------------

def test_each_row_reads_its_image_from_the_joined_table_which_is_not_copied(tmp_path):
    spec = _joined(tmp_path, _images(["b", "a"]))
    data = load_task_data(spec, None, "default")
    assert [s.id for s in data.samples] == ["q0", "q1", "q2"]  # the question's own qid wins the clash
    assert [s.prompt for s in data.samples] == ["What color? (picture a)", "How many? (picture b)",
                                                "Is it big? (picture a)"]  # the joined row's text columns
    drawn = {"b": draw_image(10, SIZE), "a": draw_image(11, SIZE)}
    for s, q in zip(data.samples, QUESTIONS):
        (image,) = s.media
        assert s.failure is None and len(image.source.ds) == 2 and "question" not in image.source.ds.column_names
        assert np.array_equal(np.asarray(decode_image(image.source.get())), np.asarray(drawn[q["img"]].convert("RGB")))
    assert data.samples[0].media[0].source.row == data.samples[2].media[0].source.row == 1  # one stored image


def test_a_row_without_a_match_fails_alone_and_is_counted(tmp_path):
    spec = _joined(tmp_path, _images(["a"]))  # no image "b"
    samples = load_task_data(spec, None, "default").samples
    assert [s.failure is None for s in samples] == [True, False, True]
    failure = samples[1].failure
    assert failure is not None and (failure.stage, failure.type) == ("data", "NoJoinMatch")
    assert "row 1 (id 'q1')" in failure.message and "no row of the joined table has qid 'b'" in failure.message


def test_a_null_join_field_fails_its_row(tmp_path):
    questions = [dict(QUESTIONS[0]), {**QUESTIONS[1], "img": None}]
    samples = load_task_data(_joined(tmp_path, _images(["a", "b"]), questions), None, "default").samples
    assert samples[0].failure is None
    assert samples[1].failure is not None and "join.field (img) is null" in samples[1].failure.message


def test_duplicate_keys_in_the_joined_table_are_a_clear_error(tmp_path):
    spec = _joined(tmp_path, _images(["a", "b", "a"]))
    with pytest.raises(DataError, match=r"task t: joined dataset images\.parquet: rows 0 and 2 have the same qid "
                                        r"'a'; the joined table's join\.key must be unique"):
        load_task_data(spec, None, "default")


def test_wrong_join_names_are_errors_naming_the_key(tmp_path):
    _write(tmp_path / "questions.parquet", QUESTIONS)
    _write(tmp_path / "images.parquet", _images(["a", "b"]), IMAGE_FEATS)
    doc = {"id": "qid", "prompt": "{{ question }}", "references": "answer", "images": "image"}
    no_key = _task(tmp_path, doc, {"path": "questions.parquet", "join": {"path": "images.parquet", "field": "img",
                                                                        "key": "image_id"}})
    with pytest.raises(DataError, match=r"no column 'image_id' \(join\.key; columns: qid, image, caption\)"):
        load_task_data(no_key, None, "default")
    no_field = _task(tmp_path, doc, {"path": "questions.parquet", "join": {"path": "images.parquet",
                                                                          "field": "imageId", "key": "qid"}})
    with pytest.raises(SampleError, match=r"no field 'imageId' \(dataset\.join\.field; columns: qid, img, "):
        load_task_data(no_field, None, "default")
    (tmp_path / "on.yaml").write_text("task: on\ndataset: {path: q.parquet, join: {path: i.parquet, on: img, key: id}}"
                                      "\ndoc: {prompt: x, references: answer}\nmetrics: [{name: exact_match}]\n")
    with pytest.raises(TaskError, match=r"dataset\.join\.field: Field required"):  # YAML reads `on` as true
        load_file(tmp_path / "on.yaml")


def test_a_file_override_keeps_the_join_and_a_repo_copy_gives_both_tables(tmp_path):
    spec = _joined(tmp_path, _images(["a", "b"]))
    other = _write(tmp_path / "elsewhere" / "q.parquet", QUESTIONS[:2])
    data = load_task_data(spec, None, "default", str(other))  # the questions replaced; images as the YAML says
    assert [s.id for s in data.samples] == ["q0", "q1"] and all(s.failure is None for s in data.samples)
    assert data.fingerprint["path"] == "q.parquet" and data.fingerprint["join"]["path"] == "images.parquet"
    # a task whose two tables are configs of one repo: a local copy of the repo holds both
    repo = tmp_path / "repo"
    _write(repo / "questions" / "test-00000-of-00001.parquet", QUESTIONS)
    _write(repo / "pictures" / "test-00000-of-00001.parquet", _images(["b", "a"]), IMAGE_FEATS)
    configs = "".join(f"- config_name: {c}\n  data_files:\n  - split: test\n    path: {c}/test-*\n"
                      for c in ("questions", "pictures"))
    (repo / "README.md").write_text(f"---\nconfigs:\n{configs}---\n")
    hub = _task(tmp_path, dict(spec.doc.model_dump(exclude_none=True)), {
        "path": "someone/repo", "name": "questions", "revision": "main",
        "join": {"path": "someone/repo", "name": "pictures", "revision": "main", "field": "img", "key": "qid"}}, "h")
    data = load_task_data(hub, None, "default", str(repo))
    assert [s.prompt for s in data.samples] == ["What color? (picture a)", "How many? (picture b)",
                                                "Is it big? (picture a)"]
    assert data.fingerprint["kind"] == data.fingerprint["join"]["kind"] == "local"


def test_run_json_tells_a_changed_joined_table():
    table = {"kind": "local", "path": "q.parquet", "files": 1, "bytes": 10, "xxh3": "1"}
    old = {**table, "join": {**table, "path": "i.parquet", "xxh3": "2"}}
    assert data_changed(old, old) is None
    new = {**old, "join": {**old["join"], "xxh3": "3"}}
    assert (data_changed(old, new) or "").startswith("joined table: the content of i.parquet differs")
    assert data_changed(table, old) == "joined table: a joined table added or removed"


def test_tasks_without_join_or_explode_keep_their_hash():
    spec = TaskSpec.model_validate({"task": "t", "dataset": {"path": "x.parquet"}, "metrics": [{"name": "exact_match"}],
                                    "doc": {"prompt": "{{ q }}", "references": "a"}})
    dump = spec.stable_dump()
    assert "join" not in dump["dataset"] and "explode" not in dump["doc"]


# ---- explode ---------------------------------------------------------------------------------

COVERS = [{"cover": "c0", "questions": ["Title?", "Author?"], "answers": ["Emma", "Austen"], "image": "c0.png"},
          {"cover": "c1", "questions": ["Genre?"], "answers": ["Poetry"], "image": "c1.png"}]
EXPLODE = {"explode": ["questions", "answers"], "id": "{{ cover }}-{{ explode_index }}", "prompt": "{{ questions }}",
           "references": "answers", "images": "image", "cluster": "cover"}


def _explode_spec(**doc) -> TaskSpec:
    return TaskSpec.model_validate({"task": "t", "dataset": {"path": "x.parquet"}, "doc": {**EXPLODE, **doc},
                                    "metrics": [{"name": "exact_match"}]})


def test_each_item_of_a_rows_lists_is_a_sample_with_a_unique_id():
    samples, _ = build_samples(_explode_spec(), datasets.Dataset.from_list(COVERS))
    assert [(s.id, s.prompt, s.references, s.cluster) for s in samples] == [
        ("c0-0", "Title?", ["Emma"], "c0"), ("c0-1", "Author?", ["Austen"], "c0"), ("c1-0", "Genre?", ["Poetry"], "c1")]
    assert [s.metadata for s in samples] == [{"row": 0, "item": 0}, {"row": 0, "item": 1}, {"row": 1, "item": 0}]
    assert [s.media[0].source.get() for s in samples] == ["c0.png", "c0.png", "c1.png"]  # the row's, not copied


def test_lists_of_unequal_length_fail_their_row_counted():
    rows = [COVERS[0], {**COVERS[1], "answers": ["Poetry", "Verse"]}, {**COVERS[1], "cover": "c2", "answers": None}]
    samples, _ = build_samples(_explode_spec(), datasets.Dataset.from_list(rows))
    assert [s.id for s in samples] == ["c0-0", "c0-1", "c1-0", "c2-0"]
    assert [s.failure is None for s in samples] == [True, True, False, False]
    bad, null = samples[2].failure, samples[3].failure
    assert bad is not None and (bad.stage, bad.type) == ("data", "ExplodeLengths")
    assert bad.message == "row 1 (id 'c1-0'): doc.explode needs lists of one length (questions: 1 items, " \
                          "answers: 2 items)"
    assert null is not None and "answers: not a list" in null.message


def test_an_id_that_does_not_tell_items_apart_is_refused_and_empty_lists_give_no_sample():
    with pytest.raises(SampleError, match=r"rows 0 and 0 have the same id 'c0'.*must use \{\{ explode_index \}\}"):
        build_samples(_explode_spec(id="cover"), datasets.Dataset.from_list(COVERS))
    rows = [{**COVERS[0], "questions": [], "answers": []}, COVERS[1]]
    samples, _ = build_samples(_explode_spec(), datasets.Dataset.from_list(rows))
    assert [s.id for s in samples] == ["c1-0"]


def test_exclude_if_sees_each_item_and_a_missing_list_field_is_named():
    samples, n_excluded = build_samples(_explode_spec(exclude_if="{{ questions == 'Author?' }}"),
                                        datasets.Dataset.from_list(COVERS))
    assert [s.id for s in samples] == ["c0-0", "c1-0"] and n_excluded == 1
    with pytest.raises(SampleError, match=r"no field 'question' \(doc\.explode; columns: cover, questions, "):
        build_samples(_explode_spec(explode=["question", "answers"]), datasets.Dataset.from_list(COVERS))
    with pytest.raises(ValueError, match="doc.explode: name one or more distinct columns"):
        _explode_spec(explode=["answers", "answers"])

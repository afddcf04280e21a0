"""Dataset sources (local parquet / jsonl / save_to_disk) and rows -> samples."""
from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from m3eval.data.fields import get_field
from m3eval.data.samples import SampleError, build_samples
from m3eval.data.sources import DataError, load_dataset_rows
from m3eval.data.synthetic import draw_image
from m3eval.tasks.schema import DatasetSpec, DocSpec, StepSpec, TaskSpec

ROWS = [{"qid": f"q{i}", "question": f"question {i}?", "instruction": ["Say it.", "Tell me.", "Answer."][i % 3],
         "answers": [{"answer": f"a{i}"}, {"answer": f"b{i}"}], "options": ["x", "y", "z"], "gold": i % 3}
        for i in range(6)]


def spec(path: str, **doc) -> TaskSpec:
    d = {"prompt": "{{ instruction }} {{ question }}", "references": "answers.answer", "id": "qid", **doc}
    return TaskSpec(task="t", dataset=DatasetSpec(path=path, split="test"), doc=DocSpec(**d),
                    metrics=[StepSpec(name="exact_match")])


def write_jsonl(path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_get_field_maps_dotted_paths_over_lists():
    row = {"a": [{"b": {"c": 1}}, {"b": {"c": 2}}], "x": {"y": "z"}}
    assert get_field(row, "a.b.c") == [1, 2] and get_field(row, "x.y") == "z"
    with pytest.raises(KeyError):
        get_field(row, "x.nope")


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "disk"])
def test_local_formats_give_the_same_samples(tmp_path, fmt):
    src = write_jsonl(tmp_path / "rows.jsonl")
    if fmt == "parquet":
        datasets.Dataset.from_list(ROWS).to_parquet(str(tmp_path / "rows.parquet"))
        src = tmp_path / "rows.parquet"
    elif fmt == "disk":
        datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "rows_disk"))
        src = tmp_path / "rows_disk"
    s = spec(src.name)
    ds, _ = load_dataset_rows(s.dataset, tmp_path, s.task)  # relative path resolved against the YAML's folder
    samples, _ = build_samples(s, ds)
    assert [x.id for x in samples] == [r["qid"] for r in ROWS]
    assert samples[1].prompt == "Tell me. question 1?" and samples[1].references == ["a1", "b1"]


def test_missing_data_file_names_task_and_path(tmp_path):
    s = spec("missing.parquet")
    with pytest.raises(DataError, match=r"task t: .*missing\.parquet"):
        load_dataset_rows(s.dataset, tmp_path, s.task)


def test_missing_split_of_a_saved_dataset_dict(tmp_path):
    datasets.DatasetDict({"validation": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "dd"))
    s = spec("dd")
    with pytest.raises(DataError, match=r"no split 'test'; it has validation"):
        load_dataset_rows(s.dataset, tmp_path, s.task)


def test_template_with_a_missing_field_names_task_row_and_field(tmp_path):
    s = spec(write_jsonl(tmp_path / "r.jsonl").name, prompt="{{ questoin }}")
    ds, _ = load_dataset_rows(s.dataset, tmp_path, s.task)
    with pytest.raises(SampleError, match=r"task t: row 0: prompt template: 'questoin' is undefined"):
        build_samples(s, ds)


def test_missing_reference_field_lists_columns(tmp_path):
    s = spec(write_jsonl(tmp_path / "r.jsonl").name, references="answer")
    ds, _ = load_dataset_rows(s.dataset, tmp_path, s.task)
    with pytest.raises(SampleError, match=r"row 0: no field 'answer' \(columns: qid, question"):
        build_samples(s, ds)


def test_choices_letters_and_options_in_templates(tmp_path):
    s = spec(write_jsonl(tmp_path / "r.jsonl").name, choices="options", references="{{ letters[gold] }}",
             prompt="{{ question }}\n{{ options }}")
    samples, _ = build_samples(s, load_dataset_rows(s.dataset, tmp_path, s.task)[0])
    assert samples[2].references == ["C"] and samples[2].choices == ["x", "y", "z"]
    assert samples[2].prompt == "question 2?\nA. x\nB. y\nC. z"


def test_instruction_variants_all_and_k(tmp_path):
    s = spec(write_jsonl(tmp_path / "r.jsonl").name, instruction="instruction")
    ds, _ = load_dataset_rows(s.dataset, tmp_path, s.task)
    every, _ = build_samples(s, ds, instructions="all")
    assert len(every) == 6 * 3  # three distinct instructions, in order of first appearance
    assert [x.prompt for x in every[:3]] == ["Say it. question 0?", "Tell me. question 0?", "Answer. question 0?"]
    assert every[4].id == "q1#i1" and every[4].instruction == 1
    assert len(build_samples(s, ds, instructions="2")[0]) == 12
    no_field = spec("r.jsonl")
    single, _ = build_samples(no_field, ds, instructions="all")  # no variants: its one prompt, not an error
    assert [x.id for x in single] == [x.id for x in build_samples(no_field, ds)[0]]
    assert all(x.instruction is None for x in single)


def test_media_stays_lazy_until_asked(tmp_path):
    import base64
    import io
    buf = io.BytesIO()
    draw_image(3).save(buf, format="PNG")
    rows = [{"id": 0, "q": "?", "a": "x", "imgs": [base64.b64encode(buf.getvalue()).decode()] * 2}]
    (tmp_path / "m.jsonl").write_text(json.dumps(rows[0]) + "\n")
    s = TaskSpec(task="m", dataset=DatasetSpec(path="m.jsonl"),
                 doc=DocSpec(prompt="{{ q }}", references="a", images="imgs"), metrics=[StepSpec(name="rouge_l")])
    (sample,), _ = build_samples(s, load_dataset_rows(s.dataset, tmp_path, "m")[0])
    assert sample.media[0].kind == "image" and len(sample.media[0].source.get()) == 2


def test_duplicate_ids_are_an_error_naming_both_rows(tmp_path):
    rows = [dict(r, qid="same" if i in (1, 4) else r["qid"]) for i, r in enumerate(ROWS)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = spec("d.jsonl")
    with pytest.raises(SampleError, match=r"rows 1 and 4 have the same id 'same'"):
        build_samples(s, load_dataset_rows(s.dataset, tmp_path, s.task)[0])


def test_template_type_errors_and_too_many_choices_are_sample_errors(tmp_path):
    s = spec(write_jsonl(tmp_path / "r.jsonl").name, prompt="{{ question + gold }}")
    with pytest.raises(SampleError, match=r"row 0: prompt template: template error: TypeError"):
        build_samples(s, load_dataset_rows(s.dataset, tmp_path, s.task)[0])
    many = [dict(ROWS[0], options=[str(i) for i in range(27)])]
    (tmp_path / "m.jsonl").write_text(json.dumps(many[0]) + "\n")
    s = spec("m.jsonl", choices="options", prompt="{{ options }}")
    with pytest.raises(SampleError, match="27 choices; at most 26"):
        build_samples(s, load_dataset_rows(s.dataset, tmp_path, s.task)[0])

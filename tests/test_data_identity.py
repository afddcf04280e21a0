"""A run's identity covers the data it read: a task's own local file rewritten under the
same name, a save_to_disk folder or M3IT snapshot changed, a chat_template=FILE edited,
or hub data at another commit is never resumed silently (issue 8.6)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import datasets
import pytest

from m3eval.data.fingerprint import commit_from_paths, hub_fingerprint, local_fingerprint, model_files_fingerprint
from m3eval.data.sources import load_dataset_rows
from m3eval.run.pipeline import RunConfig, RunError, evaluate
from m3eval.results import read_jsonl
from m3eval.data.fingerprint import data_changed
from m3eval.tasks.schema import DatasetSpec
from test_resume import rows, write  # demo rows, rewritten in place

ROOT = Path(__file__).resolve().parents[1]
SHA = "0123456789abcdef0123456789abcdef01234567"


def task_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "idtask.yaml").write_text(
        "task: idtask\nlanguage: zh\ndataset: {path: rows.jsonl}\n"
        "doc: {prompt: '{{ instruction }}', references: outputs, images: image_base64_str}\n"
        "generation: {max_new_tokens: 4}\nmetrics: [{name: rouge_l}]\n")
    write(folder / "rows.jsonl", rows(3))
    return folder


def cfg(model_dir: Path, out: Path, tasks_dir: Path, **args) -> RunConfig:
    return RunConfig(tasks=["idtask"], output=out, model_args={"pretrained": str(model_dir), **args},
                     run_name="r", include_paths=[tasks_dir], progress=False)


def test_a_tasks_own_data_file_rewritten_is_not_resumed(tiny_model, tmp_path):
    tasks = task_folder(tmp_path)
    first, _ = evaluate(cfg(tiny_model, tmp_path / "out", tasks))
    run_json = json.loads((tmp_path / "out" / "r" / "run.json").read_text())
    assert run_json["data"]["idtask"]["kind"] == "local" and run_json["data"]["idtask"]["files"] == 1
    assert first.tasks["idtask"].dump()["invocation"]["data"] == run_json["data"]["idtask"]  # results say it too
    again, _ = evaluate(cfg(tiny_model, tmp_path / "out", tasks))  # same data: resumes, nothing generated
    assert again.timings.samples == 0
    write(tasks / "rows.jsonl", rows(3, outputs="全新的参考答案"))  # same ids and path, new answers
    with pytest.raises(RunError, match=r"task idtask's data changed .*rows\.jsonl differs.*new --run-name"):
        evaluate(cfg(tiny_model, tmp_path / "out", tasks))
    evaluate(RunConfig(**{**cfg(tiny_model, tmp_path / "out", tasks).__dict__, "run_name": "r2"}))  # what to do
    preds = read_jsonl(tmp_path / "out" / "r2" / "predictions" / "idtask.jsonl")
    assert len(preds) == 3 and all(p["references"] == ["全新的参考答案"] for p in preds)


def test_a_chat_template_file_edited_is_not_resumed(tiny_model, tmp_path):
    tasks = task_folder(tmp_path)
    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'text' %}"
                        "{{ c['text'] }}{% else %}<image>{% endif %}{% endfor %}{% endfor %}")
    evaluate(cfg(tiny_model, tmp_path / "out", tasks, chat_template=str(template)))
    template.write_text(template.read_text() + "\nAnswer:")
    with pytest.raises(RunError, match="chat_template=.*chat.jinja changed"):
        evaluate(cfg(tiny_model, tmp_path / "out", tasks, chat_template=str(template)))


def test_fingerprint_of_a_save_to_disk_folder_follows_its_content(tmp_path):
    folder = tmp_path / "saved"
    datasets.Dataset.from_list([{"q": "a", "a": "1"}]).save_to_disk(str(folder))
    before = local_fingerprint(folder)
    assert before["files"] >= 2 and any(f.suffix == ".arrow" for f in folder.iterdir())
    shutil.rmtree(folder)
    datasets.Dataset.from_list([{"q": "a", "a": "2"}]).save_to_disk(str(folder))
    after = local_fingerprint(folder)
    assert after["xxh3"] != before["xxh3"] and "differs" in data_changed(before, after)
    assert local_fingerprint(folder) == after  # stable


def test_fingerprint_of_an_m3it_snapshot_covers_the_files_read(tmp_path):
    snap = tmp_path / "M3IT"
    task = snap / "data" / "vqa" / "okvqa"
    task.mkdir(parents=True)
    (task / "instructions.json").write_text(json.dumps(["Answer the question."]))
    write(task / "val_v2.jsonl",
          [{"question": "q?", "paraphrased_answer": "yes", "answer": "yes", "image_str": "aGk="}])
    spec = DatasetSpec(path=str(snap), name="okvqa", split="validation", format="m3it")

    def fp() -> dict:
        _, fingerprint = load_dataset_rows(spec, tmp_path, "t")
        return fingerprint

    first = fp()
    assert first["files"] == 2 and first["path"] == snap.resolve().name  # a name: the record is published
    write(task / "train_v2.jsonl", [{"question": "other"}])  # a file this task does not read
    assert fp() == first
    write(task / "val_v2.jsonl", [{"question": "q?", "paraphrased_answer": "no", "answer": "no", "image_str": "aGk="}])
    assert fp()["xxh3"] != first["xxh3"]


def test_hub_commit_is_read_from_cache_paths():
    hub = f"/root/.cache/huggingface/hub/datasets--org--name/snapshots/{SHA}/data/val.jsonl"
    arrow = f"/root/.cache/huggingface/datasets/org___name/default/0.0.0/{SHA}/name-test.arrow"
    blob = f"/root/.cache/huggingface/hub/datasets--org--name/blobs/{'f' * 40}"
    assert commit_from_paths([hub]) == SHA and commit_from_paths([arrow]) == SHA
    assert commit_from_paths([blob]) is None and commit_from_paths(["/tmp/x.arrow"]) is None
    a = hub_fingerprint("org/name", "main", [hub])
    b = hub_fingerprint("org/name", "main", [arrow.replace(SHA, "f" * 40)])
    assert a["commit"] == SHA and "hub commit" in data_changed(a, b)
    unknown = hub_fingerprint("org/name", "main", [])
    assert data_changed(a, unknown) is None  # a commit that cannot be told is not a change


def test_model_files_fingerprint_covers_files_only(tmp_path):
    f = tmp_path / "t.jinja"
    f.write_text("{{ x }}")
    got = model_files_fingerprint({"chat_template": str(f), "pretrained": str(tmp_path), "device": "cpu",
                                   "inline": "{{ messages }}"})
    assert list(got) == ["chat_template"]
    f.write_text("{{ y }}")
    assert model_files_fingerprint({"chat_template": str(f)})["chat_template"] != got["chat_template"]


def digest_cache(tmp_path: Path, monkeypatch) -> None:
    """A fresh digest cache that also keeps files changed a moment ago (the tests' files are)."""
    from m3eval import file_keys
    from m3eval.data import fingerprint
    monkeypatch.setenv("M3EVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fingerprint, "_cache", None)
    monkeypatch.setattr(file_keys, "_SETTLED_NS", 0)


def replace_keeping_size_and_mtime(path: Path, text: str) -> None:
    """`cp -p` of a file with the same size and mtime over `path` (what rsync -a of an edit does)."""
    new = path.with_name("new-" + path.name)
    new.write_text(text, encoding="utf-8")
    st = path.stat()
    assert new.stat().st_size == st.st_size
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    subprocess.run(["cp", "-p", str(new), str(path)], check=True)
    new.unlink()
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def reversed_answers(path: Path) -> str:
    """The file's rows with each answer spelled backwards: new references, the same bytes count."""
    return "".join(json.dumps({**r, "outputs": r["outputs"][::-1]}, ensure_ascii=False) + "\n"
                   for r in read_jsonl(path))


def test_a_data_file_replaced_keeping_size_and_mtime_is_not_resumed(tiny_model, tmp_path, monkeypatch):
    """Issue 20.27: the data's identity follows its content, not its path, size and mtime; a
    new run reads the new rows (datasets' own cache is keyed on the mtime too)."""
    digest_cache(tmp_path, monkeypatch)
    tasks = task_folder(tmp_path)
    evaluate(cfg(tiny_model, tmp_path / "out", tasks))
    data = tasks / "rows.jsonl"
    new = reversed_answers(data)
    replace_keeping_size_and_mtime(data, new)
    with pytest.raises(RunError, match=r"task idtask's data changed .*rows\.jsonl differs"):
        evaluate(cfg(tiny_model, tmp_path / "out", tasks))
    evaluate(RunConfig(**{**cfg(tiny_model, tmp_path / "out", tasks).__dict__, "run_name": "r2"}))
    preds = read_jsonl(tmp_path / "out" / "r2" / "predictions" / "idtask.jsonl")
    assert [p["references"] for p in preds] == [[json.loads(line)["outputs"]] for line in new.splitlines()]


def test_the_digest_cache_is_not_fooled_by_size_and_mtime(tmp_path, monkeypatch):
    from m3eval.data import fingerprint
    digest_cache(tmp_path, monkeypatch)
    data = tmp_path / "d.jsonl"
    data.write_text('{"a": "xy"}\n')
    first = fingerprint.local_fingerprint(data)["xxh3"]
    assert fingerprint.local_fingerprint(data)["xxh3"] == first
    replace_keeping_size_and_mtime(data, '{"a": "yx"}\n')
    assert fingerprint.local_fingerprint(data)["xxh3"] != first
    monkeypatch.setattr(fingerprint, "_cache", None)  # and in the next process
    assert fingerprint.local_fingerprint(data)["xxh3"] != first


def test_digests_persist_across_processes_and_changed_files_are_re_read(tmp_path, monkeypatch):
    from m3eval.data import fingerprint
    digest_cache(tmp_path, monkeypatch)
    data = tmp_path / "d.jsonl"
    data.write_text('{"a": 1}\n')
    first = fingerprint.local_fingerprint(data)["xxh3"]
    stored = json.loads((tmp_path / "cache" / "digests.json").read_text())
    assert len(stored) == 1
    # a new process reads the cache file: an unchanged file (same size and mtime) is not re-read
    key = next(iter(stored))
    (tmp_path / "cache" / "digests.json").write_text(json.dumps({key: "0" * 32}))
    monkeypatch.setattr(fingerprint, "_cache", None)
    assert fingerprint.file_digest(data) == "0" * 32
    data.write_text('{"a": 2}\n')  # same size, new mtime: hashed again
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 1_000_000))
    assert fingerprint.local_fingerprint(data)["xxh3"] != first

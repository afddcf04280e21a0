"""Reader of the raw files of the MMInstruction/M3IT and MMInstruction/M3IT-80 hub repos.

Both repos are loading-script datasets (M3IT.py, M3IT-80.py) that `datasets` >= 4
refuses to run. This module reads the same raw files and yields the scripts' output
schema: instruction (str), inputs (str), outputs (str), image_base64_str (list of
base64 strings; video tasks: their frames), plus `id` (the raw line index, so the
English and translated rows of one M3IT-80 item share it).

What follows the scripts (hub commit pages of MMInstruction/M3IT, short shas):
- config -> `data/<kind>/<task>/<file>.jsonl` + `instructions.json` (a JSON list of
  strings) per the script's `_URLS`; the script's `validation` split reads `val*` files;
- per-task raw fields, e.g. okvqa reads `question` / `image_str` / `paraphrased_answer`
  falling back to "The answer is {answer}." when the paraphrase says "sorry" (839be68),
  viquae reads `question` / `img_str` / `paraphrased_answer` from `*_v2` files (1499181),
  fm-iqa reads `question` / `base64` / `answer` (f4a0e31);
- one instruction per row drawn with `random.choice(instructions)`. b51a19c/7e82a88 seeded
  Python's `random` once with `_SEED = 1234`; c68192c ("update script", now on main)
  dropped `_SEED`, so the current script's draws are not reproducible at all.
  Here: a `random.Random(1234)` stream per split file, one draw per row in file order
  (a documented, deterministic choice; equal to the seeded script for a split generated
  first). A raw row that carries its own non-empty `instruction` keeps it.
Field names marked `unverified` in CONFIGS could not be read from the hub here: the
reader tries the listed candidates in order and, when none is present, raises an error
naming the file and its columns.

M3IT-80 (M3IT-80.py, cde2f49): config `{task}-{lang}`; translations in
`data/{task}/{task}_{split}_{lang}.jsonl` (fields instruction/input/output), images in
`data/{task}/{train,val,test}_500.jsonl` (field image_base64_str), joined by line.
`{task}-en` is m3eval's own config: `{task}_{split}_en.jsonl` when the repo has it, else
the English text of the `_500` rows themselves (the untranslated originals; unverified).
"""
from __future__ import annotations

import functools
import json
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from ..errors import DataError, HubUnreachable, MissingFile
from ..tasks.schema import DatasetSpec
from .convert import load_dataset
from .fingerprint import content_config, file_digest

SEED = 1234  # M3IT.py's _SEED (b51a19c)
_RAW_SPLIT = {"train": "train", "validation": "val", "test": "test"}  # M3IT-80 `_500` file names
_MEDIA = ("image_base64_str", "image_str", "img_str", "base64", "video_str", "frames", "images", "image")


_OUT_FEATURES = datasets.Features({
    "id": datasets.Value("int64"), "instruction": datasets.Value("string"), "inputs": datasets.Value("string"),
    "outputs": datasets.Value("string"), "image_base64_str": datasets.Sequence(datasets.Value("string"))})


@dataclass(frozen=True)
class RawConfig:
    folder: str  # repo folder with the split files and instructions.json
    files: dict[str, str]  # split -> file name in folder
    inputs: tuple[str, ...]  # raw field candidates, first present wins
    outputs: tuple[str, ...]
    media: tuple[str, ...] = _MEDIA
    inputs_required: bool = True  # captioning / classification rows may have no input ("")
    refusal_fallback: str | None = None  # outputs when the paraphrase contains "sorry" (okvqa)
    template_fallback: str | None = None  # outputs built from raw fields when no candidate exists
    source: str = ""


_VQA_IN = ("question", "input", "inputs")
_QA_OUT = ("paraphrased_answer", "output", "outputs", "answer")
_TVT = {"train": "train.jsonl", "validation": "val.jsonl", "test": "test.jsonl"}

# The held-out configs of the paper (docs/TASKS_SUITE.md). Files: hub tree pages at
# c68192c/main; fields: the script commits named in `source`.
CONFIGS: dict[str, RawConfig] = {
    "okvqa": RawConfig("data/vqa/okvqa", {"train": "train_v2.jsonl", "validation": "val_v2.jsonl"},
                       _VQA_IN, ("paraphrased_answer",), ("image_str",) + _MEDIA,
                       refusal_fallback="The answer is {answer}.", source="2c8af07 files, 839be68 fields"),
    "a-okvqa": RawConfig("data/vqa/a-okvqa", {"train": "train_v2.jsonl", "validation": "val_v2.jsonl"},
                         _VQA_IN, ("paraphrased_answer", "output", "outputs"), ("image_str",) + _MEDIA,
                         template_fallback="{rationale} So the answer is {answer}.",
                         source="b51a19c files; v2 output field unverified, 3203fa1 template as fallback"),
    "viquae": RawConfig("data/vqa/viquae", {"train": "train_v2.jsonl", "validation": "validation_v2.jsonl",
                                            "test": "test_v2.jsonl"},
                        _VQA_IN, ("paraphrased_answer",), ("img_str",) + _MEDIA, source="1499181"),
    "msrvtt": RawConfig("data/captioning/msrvtt", _TVT, ("input", "inputs"),
                        ("caption", "output", "outputs", "answer"), inputs_required=False,
                        source="ee0aa91 files; fields unverified"),
    "ivqa": RawConfig("data/vqa/ivqa", _TVT, _VQA_IN, _QA_OUT, source="9afe423 files; fields unverified"),
    "activitynet-qa": RawConfig("data/vqa/activitynet-qa", _TVT, _VQA_IN, _QA_OUT,
                                source="ee0aa91 files; fields unverified"),
    "msrvtt-qa": RawConfig("data/vqa/msrvtt-qa", _TVT, _VQA_IN, _QA_OUT, source="9afe423 files; fields unverified"),
    "msvd-qa": RawConfig("data/vqa/msvd-qa", _TVT, _VQA_IN, _QA_OUT, source="9afe423 files; fields unverified"),
    "flickr8k-cn": RawConfig("data/captioning/flickr8k-cn", {"validation": "val.jsonl", "test": "test.jsonl"},
                             ("input", "inputs"), ("caption", "output", "outputs", "answer"),
                             inputs_required=False, source="6df7e4a files; fields unverified"),
    "fm-iqa": RawConfig("data/vqa/fm-iqa", {"train": "para_train.jsonl", "validation": "para_val.jsonl"},
                        _VQA_IN, ("paraphrased_answer", "answer", "output", "outputs"), ("base64",) + _MEDIA,
                        source="b962e5b para_* files (unverified that the script reads them), f4a0e31 fields"),
    "chinese-food": RawConfig("data/classification/chinesefoodnet-10", {"test": "test.jsonl"},
                              ("input", "inputs", "question"), ("output", "outputs", "answer", "label"),
                              inputs_required=False, source="9d74cb2 file; config name and fields unverified"),
}

M3IT80_TASKS = ("imagenet", "vqa-v2", "okvqa", "winoground", "vist", "msrvtt", "msrvtt-qa")  # data/ at 53547da
M3IT80_LANGS = (
    "af am ar as ast be bg bn bs ca ceb cs cy da de el es et fi fr fuv gl gu ha he hi hr hu hy id ig is it ja "
    "jv ka kk km kn ko ky lb lg lij li ln lo lt lv mi mk ml mr mt my nl ny oc pa pl pt ro ru sd sk sn so sr sv "
    "ta te tg th tl tr uk ur vi wo zh").split()  # M3IT-80.py _LAN_CODES, in order


def load_m3it(spec: DatasetSpec, base_dir: Path) -> tuple[datasets.Dataset, list[Path]]:
    """Rows of an M3IT (`format: m3it`) or M3IT-80 (`format: m3it80`) config, in the scripts' output
    schema, and the paths of the raw files read (for the run's data fingerprint)."""
    if spec.format not in ("m3it", "m3it80"):
        raise DataError(f"load_m3it: format must be m3it or m3it80, got {spec.format!r}")
    repo = _Repo(spec, base_dir)
    return (_load_m3it80(spec, repo) if spec.format == "m3it80" else _load_m3it(spec, repo)), repo.read


# ---------------------------------------------------------------- repo files

def snapshot_root(spec: DatasetSpec, base_dir: Path) -> Path | None:
    """The local folder laid out like the hub repo (a snapshot) that `spec.path` names, relative
    to `base_dir`; None when it names the hub repo itself."""
    p = Path(spec.path).expanduser()
    local = spec.path.startswith((".", "/", "~")) or (base_dir / p).is_dir()  # else a hub id
    return (p if p.is_absolute() else base_dir / p) if local else None


class _Repo:
    """Files of the hub repo `spec.path`, or of a local folder laid out like it (a snapshot)."""

    def __init__(self, spec: DatasetSpec, base_dir: Path):
        self.spec = spec
        self.read: list[Path] = []  # raw files read, in order (the data fingerprint)
        self.root = snapshot_root(spec, base_dir)
        if self.root is not None and not self.root.is_dir():
            raise DataError(f"local snapshot folder {self.root} does not exist")

    def where(self, rel: str) -> str:
        return str(self.root / rel) if self.root is not None else f"{rel} of hub dataset {self.spec.path}"

    def fetch(self, rel: str) -> Path:
        path = self._fetch(rel)
        self.read.append(path)
        return path

    def _fetch(self, rel: str) -> Path:
        if self.root is not None:
            path = self.root / rel
            if not path.is_file():
                raise MissingFile(f"missing file {path} in the local snapshot {self.root}")
            return path
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
        try:
            return Path(hf_hub_download(self.spec.path, rel, repo_type="dataset", revision=self.spec.revision))
        except LocalEntryNotFoundError:  # raised when the hub cannot be reached and the cache lacks the file
            raise HubUnreachable(
                f"cannot download {rel} from the hub dataset {self.spec.path} (revision {self.spec.revision}): "
                "the hub is unreachable and the file is not cached. Point the task at local data with "
                "--dataset-override TASK=PATH (rows in the output schema), or set dataset.path to a local "
                "snapshot folder of the repo") from None
        except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError) as e:
            raise MissingFile(f"hub dataset {self.spec.path} (revision {self.spec.revision}) has no file {rel}: "
                              f"{type(e).__name__}") from None

    def exists(self, rel: str) -> bool:
        try:
            self.fetch(rel)
            return True
        except MissingFile:
            return False


def _read_jsonl(path: Path) -> datasets.Dataset:
    """A raw jsonl file as an Arrow-backed (memory-mapped) Dataset."""
    if path.stat().st_size == 0:  # e.g. a-okvqa's empty train.jsonl (4d9870f): the json builder rejects it
        return datasets.Dataset.from_dict({})
    try:
        return load_dataset("json", data_files=str(path), split="train", **content_config(file_digest(path)))
    except Exception as e:
        raise DataError(f"{path}: cannot read as JSON lines: {type(e).__name__}: {e}") from None


def _read_instructions(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read the instruction list: {e}") from None
    if not (isinstance(data, list) and data and all(isinstance(s, str) for s in data)):
        raise DataError(f"{path}: expected a non-empty JSON list of instruction strings")
    return data


def _pick(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in columns), None)


def _explicit_files(spec: DatasetSpec, allowed: tuple[str, ...]) -> dict[str, str] | None:
    """`data_files: {rows: ..., ...}` given in the YAML, or None (then the config table decides)."""
    if spec.data_files is None:
        return None
    if not isinstance(spec.data_files, dict) or "rows" not in spec.data_files:
        raise DataError(f"data_files: for format {spec.format} give a mapping with keys {', '.join(allowed)} "
                        f"(rows required), got {spec.data_files!r}")
    out = {}
    for key, val in spec.data_files.items():
        if key not in allowed:
            raise DataError(f"data_files: unknown key {key!r}; known: {', '.join(allowed)}")
        if isinstance(val, list):
            if len(val) != 1:
                raise DataError(f"data_files.{key}: give one file, got {len(val)}")
            val = val[0]
        out[key] = val
    return out


# ---------------------------------------------------------------- M3IT

def _load_m3it(spec: DatasetSpec, repo: _Repo) -> datasets.Dataset:
    explicit = _explicit_files(spec, ("rows", "instructions"))
    if explicit is not None:
        base = CONFIGS.get(spec.name or "")
        cfg = base or RawConfig("", {}, _VQA_IN, _QA_OUT, inputs_required=False, source="data_files")
        rows_rel, instr_rel = explicit["rows"], explicit.get("instructions")
    else:
        if spec.name not in CONFIGS:
            raise DataError(f"unknown M3IT config {spec.name!r}; m3eval reads: {', '.join(sorted(CONFIGS))} "
                            "(or give dataset.data_files: {rows: ..., instructions: ...})")
        cfg = CONFIGS[spec.name]
        if spec.split not in cfg.files:
            raise DataError(f"M3IT config {spec.name} has no split {spec.split!r}; it has {', '.join(cfg.files)}")
        rows_rel = f"{cfg.folder}/{cfg.files[spec.split]}"
        instr_rel = f"{cfg.folder}/instructions.json"
    rows = _read_jsonl(repo.fetch(rows_rel))
    instructions = _read_instructions(repo.fetch(instr_rel)) if instr_rel else []
    return _to_output(rows, cfg, instructions, repo.where(rows_rel))


def _empty() -> datasets.Dataset:
    return datasets.Dataset.from_dict({k: [] for k in _OUT_FEATURES}, features=_OUT_FEATURES)


def _to_output(rows: datasets.Dataset, cfg: RawConfig, instructions: list[str], where: str) -> datasets.Dataset:
    if len(rows) == 0:
        return _empty()
    cols = rows.column_names
    fields = {"inputs": _pick(cols, cfg.inputs), "outputs": _pick(cols, cfg.outputs), "media": _pick(cols, cfg.media),
              "instruction": "instruction" if "instruction" in cols else None}
    missing = [k for k in ("outputs", "media") if fields[k] is None]
    if fields["outputs"] is None and cfg.template_fallback and _template_fields(cfg.template_fallback) <= set(cols):
        missing.remove("outputs")
    if fields["inputs"] is None and cfg.inputs_required:
        missing.append("inputs")
    if cfg.refusal_fallback and not _template_fields(cfg.refusal_fallback) <= set(cols):
        missing.append(f"outputs fallback ({cfg.refusal_fallback!r})")
    if missing:
        wanted = {"inputs": cfg.inputs, "outputs": cfg.outputs, "media": cfg.media}
        raise DataError(f"{where}: no raw field for " + "; ".join(
            f"{k} (tried {', '.join(wanted[k])})" if k in wanted else k for k in missing)
                        + f"; the file has: {', '.join(cols)}")
    if fields["instruction"] is None and not instructions:
        raise DataError(f"{where}: rows carry no `instruction` and no instructions.json was given")
    # One seeded draw per row in file order, made up front: a list of ints, not of rows.
    rng = random.Random(SEED)
    picks = [rng.choice(range(len(instructions))) for _ in range(len(rows))] if instructions else []
    fn = functools.partial(_map_m3it, fields=fields, cfg=cfg, instructions=instructions, picks=picks)
    return rows.map(fn, with_indices=True, batched=True, batch_size=64, writer_batch_size=64,
                    remove_columns=cols, features=_OUT_FEATURES, desc="M3IT rows")


def _template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _media_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _map_m3it(batch: dict[str, list], idx: list[int], fields: dict[str, str | None], cfg: RawConfig,
              instructions: list[str], picks: list[int]) -> dict[str, list]:
    n = len(idx)
    out: dict[str, list] = {"id": list(idx), "instruction": [], "inputs": [], "outputs": [], "image_base64_str": []}
    for j in range(n):
        own = batch[fields["instruction"]][j] if fields["instruction"] else None
        out["instruction"].append(own if isinstance(own, str) and own.strip() else instructions[picks[idx[j]]])
        out["inputs"].append(str(batch[fields["inputs"]][j] or "") if fields["inputs"] else "")
        row = {k: batch[k][j] for k in batch}
        answer = row.get(fields["outputs"]) if fields["outputs"] else None
        if cfg.refusal_fallback and isinstance(answer, str) and "sorry" in answer.lower():
            answer = cfg.refusal_fallback.format(**row)
        if answer is None and cfg.template_fallback:
            answer = cfg.template_fallback.format(**row)
        out["outputs"].append("" if answer is None else str(answer))
        out["image_base64_str"].append(_media_list(row.get(fields["media"]) if fields["media"] is not None else None))
    return out


# ---------------------------------------------------------------- M3IT-80

def _split_name(spec: DatasetSpec) -> tuple[str, str]:
    name = spec.name or ""
    task, _, lang = name.rpartition("-")
    if not task:
        raise DataError(f"M3IT-80 config {name!r}: expected {{task}}-{{lang}}, e.g. okvqa-zh")
    if lang != "en" and lang not in M3IT80_LANGS:
        raise DataError(f"M3IT-80 config {name!r}: unknown language {lang!r}; the 80 codes are "
                        f"{' '.join(M3IT80_LANGS)} (plus en: the untranslated originals)")
    return task, lang


def _load_m3it80(spec: DatasetSpec, repo: _Repo) -> datasets.Dataset:
    task, lang = _split_name(spec)
    explicit = _explicit_files(spec, ("rows", "images"))
    if explicit is not None:
        trans_rel, img_rel = explicit["rows"], explicit.get("images")
    else:
        if task not in M3IT80_TASKS:
            raise DataError(f"M3IT-80 config {spec.name!r}: unknown task {task!r}; known: {', '.join(M3IT80_TASKS)}")
        if spec.split not in _RAW_SPLIT:
            raise DataError(f"M3IT-80 split {spec.split!r}: expected one of {', '.join(_RAW_SPLIT)}")
        trans_rel = f"data/{task}/{task}_{spec.split}_{lang}.jsonl"
        img_rel = f"data/{task}/{_RAW_SPLIT[spec.split]}_500.jsonl"
        if lang == "en" and not repo.exists(trans_rel):
            trans_rel = None  # no English translation-format file: the `_500` rows carry the English text
    images = _read_jsonl(repo.fetch(img_rel)) if img_rel else None
    text = _read_jsonl(repo.fetch(trans_rel)) if trans_rel else images
    if img_rel is None or images is None or text is None:  # all three together: text is images without rows
        raise DataError("data_files: M3IT-80 needs `images` (the {split}_500.jsonl file) beside `rows`")
    text_where = repo.where(trans_rel or img_rel)
    if len(text) != len(images):
        raise DataError(f"M3IT-80 {spec.name}: {text_where} has {len(text)} lines but {repo.where(img_rel)} has "
                        f"{len(images)}; they are joined by line")
    if len(text) == 0:
        return _empty()
    cols = text.column_names
    fields = {"instruction": _pick(cols, ("instruction",)), "inputs": _pick(cols, ("input", "inputs")),
              "outputs": _pick(cols, ("output", "outputs")), "media": _pick(images.column_names, _MEDIA)}
    missing = [k for k in ("instruction", "outputs") if fields[k] is None]
    if missing:
        raise DataError(f"{text_where}: no field for {', '.join(missing)}; the file has: {', '.join(cols)}")
    if fields["media"] is None:
        raise DataError(f"{repo.where(img_rel)}: no image field (tried {', '.join(_MEDIA)}); "
                        f"the file has: {', '.join(images.column_names)}")
    keep = [c for c in (fields["instruction"], fields["inputs"], fields["outputs"]) if c]
    media = images.select_columns([fields["media"]]).rename_column(fields["media"], "_media")
    joined = datasets.concatenate_datasets([text.select_columns(keep), media], axis=1)
    fn = functools.partial(_map_m3it80, fields=fields)
    return joined.map(fn, with_indices=True, batched=True, batch_size=64, writer_batch_size=64,
                      remove_columns=joined.column_names, features=_OUT_FEATURES, desc="M3IT-80 rows")


def _map_m3it80(batch: dict[str, list], idx: list[int], fields: dict[str, str | None]) -> dict[str, list]:
    def text(field: str | None, j: int) -> str:  # M3IT_ML.py strips the translated text (abcc244)
        return str(batch[field][j] or "").strip() if field else ""
    rng = range(len(idx))
    return {"id": list(idx), "instruction": [text(fields["instruction"], j) for j in rng],
            "inputs": [text(fields["inputs"], j) for j in rng], "outputs": [text(fields["outputs"], j) for j in rng],
            "image_base64_str": [_media_list(batch["_media"][j]) for j in rng]}

"""The M3IT paper protocol as Ying-VLM's inference code runs it (tasks/m3it/ying/): prompt template,
greedy, 128 new tokens, the answer cut at the first newline, ROUGE-L."""
import datasets

from m3eval.data.samples import build_samples
from m3eval.scoring.filters import apply_filters
from m3eval.scoring.task import score_task
from m3eval.tasks.registry import Registry
from m3eval.types import Prediction


def test_ying_variants_cover_every_m3it_task():
    reg = Registry.discover()
    base = reg.expand("m3it_heldout")
    assert reg.expand("m3it_heldout_ying") == [f"{t}_ying" for t in base]
    for t in base:
        ying, paper = reg.tasks[f"{t}_ying"], reg.tasks[t]
        assert ying.protocol == "paper_ying" and paper.protocol == "paper"
        assert ying.dataset == paper.dataset and ying.metrics == paper.metrics and ying.language == paper.language
        assert ying.generation.max_new_tokens == 128 and not ying.generation.do_sample
        assert [(f.name, f.args) for f in ying.filters] == [("first_line", {"skip_empty": False})]


def test_ying_prompt_and_first_line_cut():
    spec = Registry.discover().tasks["m3it_okvqa_ying"]
    rows = [{"instruction": "Scrutinize the given image and answer the connected question.",
             "inputs": "What is the color of the couch?", "outputs": "The couch is green.",
             "image_base64_str": [""]}]
    s = build_samples(spec, datasets.Dataset.from_list(rows))[0][0]
    assert s.prompt == ("\n<human>:\nScrutinize the given image and answer the connected question.\n"
                        "What is the color of the couch?\n<bot>:\n")
    raw = "The couch is green.\nThe room also has a lamp, a table and two chairs by the window."
    assert apply_filters(raw, spec.filters) == "The couch is green."
    assert apply_filters("\nlate start", spec.filters) == ""  # split("\n")[0], as Ying-VLM does
    assert apply_filters("\nlate start", [{"name": "first_line"}]) == "late start"  # the default skips empties
    pred = [Prediction(id="0", prediction=raw, prompt=s.prompt, references=s.references)]
    cut, _ = score_task(pred, spec.metrics, spec.filters)
    whole, _ = score_task(pred, spec.metrics, [])
    assert cut["metrics"]["rouge_l"]["value"] == 1.0 > whole["metrics"]["rouge_l"]["value"]

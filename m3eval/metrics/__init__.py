"""m3eval metrics: plain functions and the registry task YAML names metrics in.

Plain functions (predictions: list[str]; references: one list[str] per prediction):
    vqa_accuracy(prediction, answers) -> float       0..1, official VQA accuracy of one answer
    aokvqa_da_accuracy(prediction, direct_answers, normalize=False) -> float  0..1, official A-OKVQA DA
    extract_choice_letter(response, choices) -> str | None   the option letter named, None when unsure
    exact_match(predictions, references, ignore_case=False, ignore_punctuation=False) -> float  0..1
    rouge_l(predictions, references, lang="en") -> float   0..1, mean rouge-score rougeL F-measure
    bleu(predictions, references, lang="en") -> float      0..100, sacrebleu corpus BLEU
    chrf(predictions, references, lang="en") -> float      0..100, sacrebleu corpus chrF2
    cider(predictions, references, lang="en") -> float     pycocoevalcap CIDEr-D scale (x10; ~0..1.5 typical)
    recall_at_k(similarity, positives, k) -> float         0..1, queries x candidates; positives: sets of indices
    box_iou(a, b) -> float                                 0..1, boxes [x1, y1, x2, y2]
    grounding_accuracy(prediction, box, width, height, threshold=0.5) -> float   1.0 / 0.0 (Qwen-VL or plain box;
        protocol='qwen_vl': Qwen-VL's evaluate_grounding.py exactly)
    anls(prediction, answers, threshold=0.5) -> float      0..1, DocVQA ANLS as the RRC's infographicsvqa_eval.py
    relaxed_accuracy(prediction, target, max_relative_change=0.05) -> float   1.0 / 0.0, ChartQA (pix2struct order)
    gqa_accuracy(prediction, answer) -> float              1.0 / 0.0, GQA eval.py (strings compared as given)
    vizwiz_accuracy(prediction, answers) -> float          0..1, the VizWiz-VQA API's accuracy
    qwen_vl_vqa_score(prediction, answers) -> float        0..1, Qwen-VL eval_mm/vqa_eval.py (LAVIS VQAEval)
    textvqa_accuracy(prediction, answers, protocol="official") -> float   0..1, TextVQA (mmf's evaluator | qwen_vl)
    mmbench_infer(response, choices) -> str | None   MMBench's rule-based option matching (VLMEvalKit can_infer)
    mme_scores(rows) -> dict       MME perception / cognition / per-subtask acc, acc+, score (calculation.py)
    pope_scores(predictions, labels) -> dict   0..1 accuracy, precision, recall, f1, yes_ratio (POPE evaluate.py)
    mmmu_parse_multi_choice(response, options) -> str | None   MMMU's official letter parse (None: it would guess)

Registry: get_metric(name), metric_names(), register_metric(Metric(...)); `m3eval metrics` lists
every metric with its args, scale and source. The LLM judge (scoring/judge.py) is registered
when first looked up by name (base.LAZY_METRICS): this package never imports scoring/.
"""
import m3eval.metrics.meteor  # noqa: F401  registers coco_meteor
from m3eval.metrics.base import Metric, MetricInput, MetricResult, get_metric, metric_names, register_metric
from m3eval.metrics.caption import cider  # registers coco_* metrics
from m3eval.metrics.choice import extract_choice_letter  # registers choice_accuracy, aokvqa_mc
from m3eval.metrics.general_vqa import gqa_accuracy, qwen_vl_vqa_score, vizwiz_accuracy  # registers the same names
from m3eval.metrics.grounding import box_iou, grounding_accuracy  # registers grounding_acc
from m3eval.metrics.mmbench import mmbench_infer  # registers circular_accuracy, first_pass_accuracy
from m3eval.metrics.mme import mme_scores  # registers mme_score, mme_perception, mme_cognition, mme_acc, mme_acc_plus
from m3eval.metrics.mmmu import parse_multi_choice as mmmu_parse_multi_choice  # registers mmmu_accuracy
from m3eval.metrics.pope import pope_scores  # registers pope_{accuracy,precision,recall,f1,yes_ratio}
from m3eval.metrics.retrieval import recall_at_k  # registers top*_accuracy, i2t_r*, t2i_r*, mean_recall
from m3eval.metrics.text import bleu, chrf, rouge_l  # registers rouge_l, bleu, chrf
from m3eval.metrics.text_rich import anls, relaxed_accuracy  # registers anls, relaxed_accuracy
from m3eval.metrics.textvqa import textvqa_accuracy  # registers textvqa_accuracy
from m3eval.metrics.vqa import aokvqa_da_accuracy, exact_match, normalize_answer, vqa_accuracy  # registers VQA metrics

__all__ = [
    "Metric", "MetricInput", "MetricResult", "get_metric", "metric_names", "register_metric",
    "vqa_accuracy", "aokvqa_da_accuracy", "exact_match", "normalize_answer", "extract_choice_letter",
    "rouge_l", "bleu", "chrf", "cider", "box_iou", "grounding_accuracy", "recall_at_k",
    "anls", "relaxed_accuracy", "textvqa_accuracy",
    "gqa_accuracy", "vizwiz_accuracy", "qwen_vl_vqa_score",
    "mme_scores",
    "mmbench_infer",
    "pope_scores",
    "mmmu_parse_multi_choice",
]

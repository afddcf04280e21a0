"""General-VQA scorers of the Qwen-VL table: GQA accuracy, VizWiz accuracy and Qwen-VL's own VQA score.

Official sources followed (the ports in tests/reference/ are the differential-test oracles):
- GQA: the evaluation script distributed with GQA (gqadataset.org, "Evaluation Script ver 1.1"), eval.py, as
  kept in SHI-Labs/VCoder playground/data/eval/gqa/data/eval/eval.py @ 2f95684dddff603383b18d59dd7153481a98863e
  (LLaVA's copy: loading of scene graphs and choices made optional for testdev; the accuracy loop unchanged):
  over the balanced questions, score 1 when `predicted == gold`, the submitted string compared AS GIVEN (no
  strip, no case folding), averaged.
- VizWiz: the VizWiz-VQA API (Qing Li) PythonEvaluationTools/vqaEvaluation/vqaEval.py, as vendored in
  peyajm29/VizWiz-VQA evaluation/API/ @ 529efa44d6bb54ce51f373cbb688147601cb87cc (TRI-ML/vlm-evaluation
  vlm_eval/util/evaluation/vizwiz/eval.py @ 7292fd6727dbc40c1ad6051bf090d925f26f3b3a has the same loop). The
  prediction gets the VQA normalization (its contraction table with typographic apostrophes, U+2019); the
  answers are compared AS STORED, never normalized; leave-one-out over the answers by position;
  "unanswerable" is an answer like any other.
- Qwen-VL's protocol (QwenLM/Qwen-VL eval_mm/ @ cfe66a7cc5df6ca8bff95c2b8b02bc0a1cbdc72c, unchanged at master
  aa00ed04091eea5fcdd32985e7915f1c53e7d599): evaluate_vqa.py scores vqav2_val, okvqa_val and vizwiz_val with
  `vqa_score`, the VQAEval of eval_mm/vqa_eval.py (the LAVIS copy of the 2016 VQA script: the prediction always
  normalized in full, the answers only de-punctuated and only when they differ, nothing stripped), and
  gqa_testdev with its own answer splitting (on "is ", "are ", "a ", "an ", "the ", " of") then
  evaluate_exact_match_accuracy (stripped, lowercased equality).
"""
from __future__ import annotations

from typing import Literal

from m3eval.metrics.base import Metric, MetricInput, MetricResult, per_sample, register_metric
from m3eval.metrics.vqa import ARTICLES, MANUAL_MAP, leave_one_out, normalize_answer, process_punctuation

GQA_SOURCE = ("GQA eval.py (gqadataset.org evaluation script 1.1) as kept in SHI-Labs/VCoder "
              "playground/data/eval/gqa/data/eval/eval.py @ 2f95684dddff603383b18d59dd7153481a98863e")
VIZWIZ_SOURCE = ("VizWiz-VQA API vqaEval.py (Qing Li) as vendored in peyajm29/VizWiz-VQA evaluation/API/"
                 "PythonEvaluationTools/vqaEvaluation/vqaEval.py @ 529efa44d6bb54ce51f373cbb688147601cb87cc")
QWEN_VL_SOURCE = "QwenLM/Qwen-VL eval_mm/evaluate_vqa.py + vqa_eval.py @ cfe66a7cc5df6ca8bff95c2b8b02bc0a1cbdc72c"

# The VizWiz API's contraction table: the VQA one with most apostrophes typographic (’), some keys and
# values left straight ("aint" -> "ain't", "weve" -> "we've"), as the file has it.
_VIZWIZ_CONTRACTIONS_TABLE = """
aint ain't|arent aren't|cant can't|couldve could've|couldnt couldn't|couldn'tve couldn’t’ve
couldnt’ve couldn’t’ve|didnt didn’t|doesnt doesn’t|dont don’t|hadnt hadn’t|hadnt’ve hadn’t’ve
hadn'tve hadn’t’ve|hasnt hasn’t|havent haven’t|hed he’d|hed’ve he’d’ve|he’dve he’d’ve|hes he’s
howd how’d|howll how’ll|hows how’s|Id’ve I’d’ve|I’dve I’d’ve|Im I’m|Ive I’ve|isnt isn’t|itd it’d
itd’ve it’d’ve|it’dve it’d’ve|itll it’ll|let’s let’s|maam ma’am|mightnt mightn’t|mightnt’ve mightn’t’ve
mightn’tve mightn’t’ve|mightve might’ve|mustnt mustn’t|mustve must’ve|neednt needn’t|notve not’ve
oclock o’clock|oughtnt oughtn’t|ow’s’at ’ow’s’at|’ows’at ’ow’s’at|’ow’sat ’ow’s’at|shant shan’t
shed’ve she’d’ve|she’dve she’d’ve|she’s she’s|shouldve should’ve|shouldnt shouldn’t
shouldnt’ve shouldn’t’ve|shouldn’tve shouldn’t’ve|somebody’d somebodyd|somebodyd’ve somebody’d’ve
somebody’dve somebody’d’ve|somebodyll somebody’ll|somebodys somebody’s|someoned someone’d
someoned’ve someone’d’ve|someone’dve someone’d’ve|someonell someone’ll|someones someone’s
somethingd something’d|somethingd’ve something’d’ve|something’dve something’d’ve|somethingll something’ll
thats that’s|thered there’d|thered’ve there’d’ve|there’dve there’d’ve|therere there’re|theres there’s
theyd they’d|theyd’ve they’d’ve|they’dve they’d’ve|theyll they’ll|theyre they’re|theyve they’ve
twas ’twas|wasnt wasn’t|wed’ve we’d’ve|we’dve we’d’ve|weve we've|werent weren’t|whatll what’ll
whatre what’re|whats what’s|whatve what’ve|whens when’s|whered where’d|wheres where's|whereve where’ve
whod who’d|whod’ve who’d’ve|who’dve who’d’ve|wholl who’ll|whos who’s|whove who've|whyll why’ll
whyre why’re|whys why’s|wont won’t|wouldve would’ve|wouldnt wouldn’t|wouldnt’ve wouldn’t’ve
wouldn’tve wouldn’t’ve|yall y’all|yall’ll y’all’ll|y’allll y’all’ll|yall’d’ve y’all’d’ve
y’alld’ve y’all’d’ve|y’all’dve y’all’d’ve|youd you’d|youd’ve you’d’ve|you’dve you’d’ve|youll you’ll
youre you’re|youve you’ve
"""
VIZWIZ_CONTRACTIONS: dict[str, str] = dict(
    pair.split(" ") for pair in _VIZWIZ_CONTRACTIONS_TABLE.replace("\n", "|").split("|") if pair
)


# ---- input checks ----------------------------------------------------------------------------

def _check_text(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} is {type(value).__name__}, not str")


def _check_answers(answers: object, at_least: int) -> None:
    if isinstance(answers, str) or not isinstance(answers, (list, tuple)):
        raise TypeError(f"answers must be a list of strings, got {type(answers).__name__}")
    for j, a in enumerate(answers):
        _check_text(a, f"answer {j}")
    if len(answers) < at_least:
        raise ValueError(f"needs at least {at_least} ground-truth answer(s), got {len(answers)}"
                         + (" (leave-one-out: with one answer every prediction scores 0)" if at_least == 2 else ""))


# ---- GQA -------------------------------------------------------------------------------------

def gqa_accuracy(prediction: str, answer: str) -> float:
    """GQA accuracy of one balanced question, 1.0 or 0.0: eval.py's `predicted == gold`, the strings as
    given ("Yes" is not "yes", "cat " is not "cat")."""
    _check_text(prediction, "prediction")
    _check_text(answer, "answer")
    return 1.0 if prediction == answer else 0.0


def _between(text: str, sep: str) -> str:
    # text.split(sep)[1]: the part after the first `sep`, up to the next one
    start = text.find(sep) + len(sep)
    end = text.find(sep, start)
    return text[start:] if end < 0 else text[start:end]


def qwen_vl_gqa_answer(response: str) -> str:
    """Qwen-VL's GQA post-processing (evaluate_vqa.py, metric 'accuracy', `if 'gqa' in args.dataset`):
    stripped, cut at the first '.', ',' and '!', lowercased; then, in this order, the text between the first
    and second "is ", "are ", "a ", "an ", "the " when present ("this is a dog" -> "", since "this " holds
    "is "), the text before the first " of", stripped."""
    _check_text(response, "prediction")
    text = response.strip()
    for stop in ".,!":
        cut = text.find(stop)
        if cut >= 0:
            text = text[:cut]
    text = text.lower()
    for sep in ("is ", "are ", "a ", "an ", "the "):
        if sep in text:
            text = _between(text, sep)
    cut = text.find(" of")
    if cut >= 0:
        text = text[:cut]
    return text.strip()


def qwen_vl_exact_match(answer: str, annotations: list[str]) -> float:
    """Qwen-VL's evaluate_exact_match_accuracy for one entry: 1.0 when answer.strip().lower() equals
    some annotation.strip().lower()."""
    a = answer.strip().lower()
    return 1.0 if any(a == ann.strip().lower() for ann in annotations) else 0.0


# ---- VQA-style scores (leave-one-out: metrics/vqa.py) ----------------------------------------

def _digit_article(text: str, contractions: dict[str, str]) -> str:
    words = []
    for word in text.lower().split():
        word = MANUAL_MAP.get(word, word)
        if word not in ARTICLES:
            words.append(contractions.get(word, word))
    return " ".join(words)


def vizwiz_accuracy(prediction: str, answers: list[str]) -> float:
    """VizWiz accuracy of one answer, 0..1, as the VizWiz-VQA API's VQAEval.evaluate computes it: the
    prediction cleaned (newlines and tabs to spaces, stripped), de-punctuated and digit/article/contraction
    normalized with the API's own contraction table; the answers as stored; leave-one-out mean of
    min(1, #matching others / 3). "Unanswerable." -> "unanswerable" matches the annotators' "unanswerable"."""
    _check_text(prediction, "prediction")
    _check_answers(answers, 2)
    res = prediction.replace("\n", " ").replace("\t", " ").strip()
    return leave_one_out(_digit_article(process_punctuation(res), VIZWIZ_CONTRACTIONS), list(answers))


def qwen_vl_vqa_score(prediction: str, answers: list[str]) -> float:
    """Qwen-VL's `vqa_score` of one answer, 0..1 (eval_mm/vqa_eval.py VQAEval.evaluate): the prediction
    always cleaned and fully normalized (punctuation, lowercase, number words, articles, contractions); the
    answers neither cleaned nor lowercased, only de-punctuated and only when they are not all the same;
    leave-one-out mean of min(1, #matching others / 3). The script leaves out one answer DICT by `!=`, which
    is one answer when each carries its answer_id (the VQA and OK-VQA annotation files); here, by position."""
    _check_text(prediction, "prediction")
    _check_answers(answers, 2)
    gts = list(answers)
    if len(set(gts)) > 1:
        gts = [process_punctuation(a) for a in gts]
    return leave_one_out(normalize_answer(prediction), gts)


# ---- registry entries ------------------------------------------------------------------------

def _gqa_sample(prediction: str, references: list[str], protocol: str) -> float:
    _check_answers(references, 1)
    if protocol == "official":  # one gold answer per GQA question; any of several, if a file gives more
        return max(gqa_accuracy(prediction, r) for r in references)
    return qwen_vl_exact_match(qwen_vl_gqa_answer(prediction), references)


def _gqa_metric(items: list[MetricInput], protocol: Literal["official", "qwen_vl"] = "official") -> MetricResult:
    if protocol not in ("official", "qwen_vl"):
        raise ValueError(f"gqa_accuracy: protocol must be 'official' or 'qwen_vl', got {protocol!r}")
    return per_sample(lambda p, refs: _gqa_sample(p, refs, protocol), items)


register_metric(Metric(
    "gqa_accuracy", _gqa_metric, independent=True,
    description="GQA accuracy: protocol official = eval.py's predicted == gold, strings as given; qwen_vl = "
                "Qwen-VL's answer splitting (on 'is ', 'are ', 'a ', 'an ', 'the ', ' of'), then stripped, "
                "lowercased equality",
    source=f"{GQA_SOURCE}; qwen_vl: {QWEN_VL_SOURCE}"))
register_metric(Metric(
    "vizwiz_accuracy", lambda items: per_sample(vizwiz_accuracy, items), independent=True,
    description="VizWiz accuracy: leave-one-out min(1, n/3); the prediction VQA-normalized (the API's "
                "contraction table), the answers as stored; 'unanswerable' included",
    source=VIZWIZ_SOURCE))
register_metric(Metric(
    "qwen_vl_vqa_score", lambda items: per_sample(qwen_vl_vqa_score, items), independent=True,
    description="Qwen-VL's vqa_score (the LAVIS copy of the VQA script): leave-one-out min(1, n/3); the "
                "prediction always normalized, the answers only de-punctuated and only when they differ",
    source=QWEN_VL_SOURCE + " (vqa_eval.py VQAEval)"))

"""VQA-style answer accuracy: official VQA (OK-VQA), A-OKVQA direct answer, open-ended QA, exact match.

Official sources followed (the ports in tests/reference/ are the differential-test oracles):
- VQA accuracy: GT-Vision-Lab/VQA, PythonEvaluationTools/vqaEvaluation/vqaEval.py, VQAEval.evaluate
  at master commit a013f00 (2021-03-11, "Fixed processing answers bug"). The stored index holds the
  file at c4e6a0e4e84b9702d99800d3393652d92b5df224 (the 2016 tables: punctuation list and
  contractions with straight apostrophes, unchanged by a013f00, which only moved the normalization
  of answers and prediction under the "answers not all identical" branch). OK-VQA uses this script.
- A-OKVQA: allenai/aokvqa, evaluation/eval_predictions.py (eval_aokvqa) at commit
  42e8c44ff40d13cf272776a3197365f582137772: direct answer = min(1, #(pred == da) / 3), compared
  as given; questions with difficult_direct_answer are dropped (tasks/official/aokvqa_da.yaml,
  doc.exclude_if).
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from m3eval.errors import SampleScoreError
from m3eval.metrics.base import Metric, MetricInput, MetricResult, check_corpus, mean, register_metric

# vqaEval.py self.contractions (c4e6a0e), as "key value" pairs; note the script's own quirk
# "somebody'd" -> "somebodyd", kept.
_CONTRACTIONS_TABLE = """
aint ain't|arent aren't|cant can't|couldve could've|couldnt couldn't|couldn'tve couldn't've
couldnt've couldn't've|didnt didn't|doesnt doesn't|dont don't|hadnt hadn't|hadnt've hadn't've
hadn'tve hadn't've|hasnt hasn't|havent haven't|hed he'd|hed've he'd've|he'dve he'd've|hes he's
howd how'd|howll how'll|hows how's|Id've I'd've|I'dve I'd've|Im I'm|Ive I've|isnt isn't|itd it'd
itd've it'd've|it'dve it'd've|itll it'll|let's let's|maam ma'am|mightnt mightn't|mightnt've mightn't've
mightn'tve mightn't've|mightve might've|mustnt mustn't|mustve must've|neednt needn't|notve not've
oclock o'clock|oughtnt oughtn't|ow's'at 'ow's'at|'ows'at 'ow's'at|'ow'sat 'ow's'at|shant shan't
shed've she'd've|she'dve she'd've|she's she's|shouldve should've|shouldnt shouldn't
shouldnt've shouldn't've|shouldn'tve shouldn't've|somebody'd somebodyd|somebodyd've somebody'd've
somebody'dve somebody'd've|somebodyll somebody'll|somebodys somebody's|someoned someone'd
someoned've someone'd've|someone'dve someone'd've|someonell someone'll|someones someone's
somethingd something'd|somethingd've something'd've|something'dve something'd've|somethingll something'll
thats that's|thered there'd|thered've there'd've|there'dve there'd've|therere there're|theres there's
theyd they'd|theyd've they'd've|they'dve they'd've|theyll they'll|theyre they're|theyve they've
twas 'twas|wasnt wasn't|wed've we'd've|we'dve we'd've|weve we've|werent weren't|whatll what'll
whatre what're|whats what's|whatve what've|whens when's|whered where'd|wheres where's|whereve where've
whod who'd|whod've who'd've|who'dve who'd've|wholl who'll|whos who's|whove who've|whyll why'll
whyre why're|whys why's|wont won't|wouldve would've|wouldnt wouldn't|wouldnt've wouldn't've
wouldn'tve wouldn't've|yall y'all|yall'll y'all'll|y'allll y'all'll|yall'd've y'all'd've
y'alld've y'all'd've|y'all'dve y'all'd've|youd you'd|youd've you'd've|you'dve you'd've|youll you'll
youre you're|youve you've
"""
CONTRACTIONS: dict[str, str] = dict(
    pair.split(" ") for pair in _CONTRACTIONS_TABLE.replace("\n", "|").split("|") if pair
)
# vqaEval.py self.manualMap (number words -> digits; note "none" -> "0") and self.articles
MANUAL_MAP = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
              "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = frozenset({"a", "an", "the"})
# vqaEval.py self.punct (c4e6a0e): no '.', ':' or "'" (periods have their own rule; ':' and "'" stay)
PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
# vqaEval.py self.periodStrip: "(?!<=\d)" is a (buggy) negative lookahead, kept as is: it removes
# every period not followed by a digit.
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")
_ANY_PUNCT = re.compile(r"[;/\[\]\"{}()=+\\_\-><@`,?!.]")  # fast path: most answers have none of these
# vqaEval.py calls periodStrip.sub("", outText, re.UNICODE): the flag lands in `count`, so only the
# first re.UNICODE (== 32) periods are removed. Kept for exactness.
_PERIOD_COUNT = int(re.UNICODE)


def process_punctuation(text: str) -> str:
    """vqaEval.py processPunctuation: a punctuation mark is deleted when it touches a space in the
    input (or the input has a digit,digit comma), otherwise replaced by a space; then periods that
    are not followed by a digit are removed."""
    if not _ANY_PUNCT.search(text):
        return text
    out = text
    comma_digits = _COMMA_STRIP.search(text) is not None
    for p in PUNCT:
        if p not in text:
            continue  # replacing cannot create another mark, so absent marks stay absent
        if comma_digits or (p + " " in text) or (" " + p in text):
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, _PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    """vqaEval.py processDigitArticle: lowercase, split on whitespace, number words -> digits,
    drop articles, expand the contraction table, join with single spaces."""
    words = []
    for word in text.lower().split():
        word = MANUAL_MAP.get(word, word)
        if word not in ARTICLES:
            words.append(CONTRACTIONS.get(word, word))
    return " ".join(words)


def _clean(text: str) -> str:
    """vqaEval.py's first step on every answer and the prediction."""
    return text.replace("\n", " ").replace("\t", " ").strip()


@lru_cache(maxsize=1 << 12)  # answers repeat; a bound of 4,096 texts, not one per sample (issue 24: memory)
def normalize_answer(text: str) -> str:
    """The full vqaEval.py normalization (clean, processPunctuation, processDigitArticle). The
    official VQA accuracy applies it only to questions whose answers are not all identical."""
    return process_digit_article(process_punctuation(_clean(text)))


def check_answer_types(prediction: object, answers: object) -> None:
    """A TypeError naming what is not a string: the prediction (or None) and each answer."""
    if prediction is not None and not isinstance(prediction, str):
        raise TypeError(f"prediction is {type(prediction).__name__}, not str")
    if isinstance(answers, str) or not isinstance(answers, (list, tuple)):
        raise TypeError(f"answers must be a list of strings, got {type(answers).__name__}")
    for j, a in enumerate(answers):
        if not isinstance(a, str):
            raise TypeError(f"answer {j} is {type(a).__name__}, not str")


def vqa_accuracy(prediction: str | None, answers: list[str]) -> float:
    """Official VQA accuracy of one answer, 0..1 (vqaEval.py at a013f00, see the module doc).

    Every answer and the prediction are cleaned (newlines/tabs -> spaces, stripped). Only when the
    cleaned answers are not all identical do the answers AND the prediction get processPunctuation
    and processDigitArticle: against ten identical answers the comparison is exact ("two" vs ten
    "2" scores 0). Accuracy = mean over leaving each answer out of min(1, #remaining equal to the
    prediction / 3): with 10 answers, 3 matches give 0.9. Fewer than 2 answers is an error, since
    leaving the only answer out always scores 0.
    """
    check_answer_types(prediction, answers)
    if len(answers) < 2:
        raise ValueError(f"vqa_accuracy needs at least 2 ground-truth answers (leave-one-out), got "
                         f"{len(answers)}; use open_qa_accuracy or exact_match for single-answer data")
    if prediction is None:
        return 0.0
    gts = [_clean(a) for a in answers]
    if len(set(gts)) > 1:
        gts = [normalize_answer(a) for a in gts]
        res = normalize_answer(prediction)
    else:
        res = _clean(prediction)
    return leave_one_out(res, gts)


def leave_one_out(res: str, gts: list[str]) -> float:
    """The VQA script's accuracy of answer `res` against the answers `gts` (already normalized as
    the caller's protocol says): the mean over leaving each answer out of min(1, #others equal / 3)."""
    matches = sum(1 for a in gts if a == res)
    if matches == 0:
        return 0.0
    # Summed in answer order like vqaEval.py's gtAcc list, so the float is bit-identical.
    hit, miss = min(1.0, (matches - 1) / 3), min(1.0, matches / 3)
    total = 0.0
    for a in gts:
        total += hit if a == res else miss
    return total / len(gts)


def aokvqa_da_accuracy(prediction: str | None, direct_answers: list[str], normalize: bool = False) -> float:
    """A-OKVQA direct-answer accuracy (allenai/aokvqa eval_aokvqa): min(1, #matches / 3), no
    leave-one-out. Default: the official comparison, strings as given (pred == da). normalize=True
    (a convenience, named in the task YAML and so in results) first gives both sides the full VQA
    answer normalization, so a raw output like "Two." matches "2"."""
    check_answer_types(prediction, direct_answers)
    if not direct_answers:
        raise ValueError("aokvqa_da needs the direct answers, got none")
    if prediction is None:
        return 0.0
    if normalize:
        pred = normalize_answer(prediction)
        matches = sum(1 for a in direct_answers if normalize_answer(a) == pred)
    else:
        matches = sum(1 for a in direct_answers if a == prediction)
    return min(1.0, matches / 3.0)


def open_qa_match(prediction: str | None, references: list[str], normalize: str = "vqa") -> float:
    """Open-ended QA accuracy (MSRVTT-QA / MSVD-QA style): 1 when the prediction equals any
    reference, else 0. These benchmarks have no official scorer for generated text (their papers
    classify over an answer vocabulary, i.e. exact match on the answer word), so the comparison is
    m3eval's convention, named by `normalize`: "vqa" (default) gives both sides the full VQA answer
    normalization; "none" compares strings as given (only surrounding whitespace stripped)."""
    check_answer_types(prediction, references)
    if not references:
        raise ValueError("open_qa_accuracy needs at least one reference")
    if normalize not in ("vqa", "none"):
        raise ValueError(f"open_qa_accuracy: normalize must be 'vqa' or 'none', got {normalize!r}")
    if prediction is None:
        return 0.0
    norm = normalize_answer if normalize == "vqa" else str.strip
    pred = norm(prediction)
    return 1.0 if any(norm(r) == pred for r in references) else 0.0


# ---- exact match ----

@lru_cache(maxsize=1 << 12)
def _strip_punct(text: str) -> str:
    # Unicode punctuation (categories P*), so Chinese "。" and "，" go too.
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))


def _em_norm(text: str, ignore_case: bool, ignore_punctuation: bool) -> str:
    if ignore_punctuation:
        text = _strip_punct(text)
    if ignore_case:
        text = text.casefold()
    return " ".join(text.split())  # surrounding and repeated whitespace never counts


def exact_match_one(prediction: str | None, references: list[str], ignore_case: bool = False,
                    ignore_punctuation: bool = False) -> float:
    """1 when the prediction equals any reference after the chosen normalization, else 0.
    Whitespace is always collapsed and stripped."""
    check_answer_types(prediction, references)
    if prediction is None:
        return 0.0
    p = _em_norm(prediction, ignore_case, ignore_punctuation)
    return 1.0 if any(_em_norm(r, ignore_case, ignore_punctuation) == p for r in references) else 0.0


def exact_match(predictions: list[str], references: list[list[str]], ignore_case: bool = False,
                ignore_punctuation: bool = False) -> float:
    """Mean exact match over a corpus, 0..1."""
    check_corpus(predictions, references)
    return mean([exact_match_one(p, r, ignore_case, ignore_punctuation) for p, r in zip(predictions, references)])


# ---- registry entries ----

def _per_item(fn, items: list[MetricInput], **kw) -> MetricResult:
    scores = []
    for i, it in enumerate(items):
        try:
            scores.append(fn(it.prediction, it.references, **kw))
        except (TypeError, ValueError) as e:
            raise SampleScoreError(i, str(e)) from None
    return MetricResult(mean(scores), scores)


_VQA_SRC = "GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py @ a013f00 (master, 2021-03-11)"
_AOKVQA_SRC = "allenai/aokvqa evaluation/eval_predictions.py @ 42e8c44ff40d13cf272776a3197365f582137772"

register_metric(Metric(
    "exact_match",
    lambda items, ignore_case=False, ignore_punctuation=False: _per_item(
        exact_match_one, items, ignore_case=ignore_case, ignore_punctuation=ignore_punctuation), independent=True,
    description="1 if the prediction equals any reference (options: ignore_case, ignore_punctuation)",
    source="m3eval (whitespace always collapsed)"))
register_metric(Metric(
    "vqa_accuracy", lambda items: _per_item(vqa_accuracy, items), independent=True,
    description="official VQA accuracy, leave-one-out min(1, n/3)", source=_VQA_SRC))
register_metric(Metric(
    "aokvqa_da", lambda items, normalize=False: _per_item(aokvqa_da_accuracy, items, normalize=normalize),
    independent=True,
    description="A-OKVQA direct-answer accuracy, min(1, n/3), strings as given (normalize: VQA "
                "normalization on both sides, a convenience)", source=_AOKVQA_SRC))
register_metric(Metric(
    "open_qa_accuracy", lambda items, normalize="vqa": _per_item(open_qa_match, items, normalize=normalize),
    independent=True,
    description="open-ended QA accuracy: prediction equals any reference (normalize: vqa | none)",
    source="m3eval convention (no official scorer for generated answers); normalization from " + _VQA_SRC))

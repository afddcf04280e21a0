"""Port of GQA's accuracy: the evaluation script distributed with GQA (gqadataset.org / cs.stanford.edu/people/
dorarad/gqa/evaluate.html, "Evaluation Script ver 1.1"), eval.py, as kept in SHI-Labs/VCoder
playground/data/eval/gqa/data/eval/eval.py @ 2f95684dddff603383b18d59dd7153481a98863e (LLaVA's copy of it: the
scene-graph and choices files made optional so testdev can be scored; the accuracy loop as distributed).

Written from reading the source: predictions are read into {questionId: prediction}; for every question
with question["isBalanced"], correct = (predicted == gold) with gold = question["answer"] (the strings as
given, no normalization), score = toScore(correct); scores["accuracy"] is averaged by avg() and *100. The
binary/open split (open when types.structural == "query") is kept; validity, plausibility, consistency,
grounding and distribution are left out (they do not enter the accuracy).
"""


def toScore(b):
    return float(1 if b else 0)


def avg(lst):
    if len(lst) == 0:
        return 0
    return float(sum(lst)) / len(lst)


def evaluate(questions, predictions):
    """questions: {qid: {"answer", "isBalanced", "types": {"structural"}}}; predictions: [{"questionId",
    "prediction"}]. Returns ({"accuracy", "binary", "open"} in percent, per-question scores in order)."""
    predictions = {p["questionId"]: p["prediction"] for p in predictions}
    for qid in questions:
        if (qid not in predictions) and questions[qid]["isBalanced"]:
            raise Exception("missing predictions")
    scores = {"accuracy": [], "binary": [], "open": []}
    per_question = []
    for qid, question in questions.items():
        if question["isBalanced"]:
            gold = question["answer"]
            predicted = predictions[qid]
            correct = (predicted == gold)
            score = toScore(correct)
            scores["accuracy"].append(score)
            answerType = "open" if question["types"]["structural"] == "query" else "binary"
            scores[answerType].append(score)
            per_question.append(score)
    return {k: avg(v) * 100 for k, v in scores.items()}, per_question

"""Port of the DocVQA / InfographicVQA ANLS evaluation (the RRC's script, as kept in QwenLM/Qwen-VL):
eval_mm/infographicsvqa_eval.py, added at commit e6bbb9dd9e9fc44a4498d372e83b3b172dc1d808
(2023-08-25, "update evaluation scripts") and identical at master aa00ed04091eea5fcdd32985e7915f1c53e7d599.

Written from reading the source: the same Levenshtein (the script's own DP, shorter string on the
inner loop), the same preprocessing (strip, lower, whitespace runs -> one space) on both strings,
and the script's length: max(len(answer.upper()), len(detObject['answer'].upper())) of the RAW
strings, not of the preprocessed ones. The per-question result is 1 - min(values), set to 0 when
below the threshold; the dataset score is totalScore / number of questions (no exclusions:
question_ids_to_exclude is empty in the script). The JSON loading and the answer-type breakdown
are left out (they do not change the score).
"""


def levenshtein_distance(s1, s2):
    if len(s1) > len(s2):
        s1, s2 = s2, s1

    distances = range(len(s1) + 1)
    for i2, c2 in enumerate(s2):
        distances_ = [i2 + 1]
        for i1, c1 in enumerate(s1):
            if c1 == c2:
                distances_.append(distances[i1])
            else:
                distances_.append(1 + min((distances[i1], distances[i1 + 1], distances_[-1])))
        distances = distances_
    return distances[-1]


def question_result(gt_answers, det_answer, anls_threshold=0.5):
    """One iteration of evaluate_method's loop over gtJson['data'] (a question not excluded)."""
    values = []
    for answer in gt_answers:
        # preprocess both the answers - gt and prediction
        gt_answer = " ".join(answer.strip().lower().split())
        det = " ".join(det_answer.strip().lower().split())

        dist = levenshtein_distance(gt_answer, det)
        length = max(len(answer.upper()), len(det_answer.upper()))
        values.append(0.0 if length == 0 else float(dist) / float(length))

    result = 1 - min(values)

    if result < anls_threshold:
        result = 0
    return result


def evaluate_method(gt_data, det_answers, anls_threshold=0.5):
    """gt_data: list of answer lists (gtJson['data'][i]['answers']); det_answers: the submission's
    answers in the same order. Returns (score, per-question results) as the script computes them."""
    total_score = 0
    per_sample = []
    for gt_answers, det in zip(gt_data, det_answers):
        q = question_result(gt_answers, det, anls_threshold)
        total_score += q
        per_sample.append(q)
    score = 0 if len(gt_data) == 0 else total_score / (len(gt_data) - 0)
    return score, per_sample

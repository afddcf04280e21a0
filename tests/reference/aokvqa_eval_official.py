"""Port of eval_aokvqa from allenai/aokvqa, evaluation/eval_predictions.py at commit
42e8c44ff40d13cf272776a3197365f582137772, written from reading the source: the direct-answer
setting keeps only questions whose difficult_direct_answer `is False`, compares the prediction to
each direct answer as given (pred == da) and takes min(1.0, matches / 3.0); the multiple-choice
setting scores float(pred == choices[correct_choice_idx]) over every question. Missing predictions
score 0; the result is the mean * 100.
"""


def eval_aokvqa(dataset, preds, multiple_choice=False, strict=True):
    if isinstance(dataset, list):
        dataset = {dataset[i]["question_id"]: dataset[i] for i in range(len(dataset))}
    if multiple_choice is False:
        dataset = {k: v for k, v in dataset.items() if v["difficult_direct_answer"] is False}
    if strict:
        assert set(dataset.keys()).issubset(set(preds.keys()))
    acc = []
    for q in dataset.keys():
        if q not in preds.keys():
            acc.append(0.0)
            continue
        pred = preds[q]
        choices = dataset[q]["choices"]
        direct_answers = dataset[q]["direct_answers"]
        if multiple_choice:
            if strict:
                assert pred in choices, "Prediction must be a valid choice"
            correct_choice_idx = dataset[q]["correct_choice_idx"]
            acc.append(float(pred == choices[correct_choice_idx]))
        else:
            num_match = sum([pred == da for da in direct_answers])
            vqa_acc = min(1.0, num_match / 3.0)
            acc.append(vqa_acc)
    acc = sum(acc) / len(acc) * 100
    return acc

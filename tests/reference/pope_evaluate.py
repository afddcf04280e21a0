"""Port of POPE's scorer: RUCAIBox/POPE evaluate.py @ 3df3ba1b110ecce25696989577fad583b67d4239 (the file
unchanged since f3ec604337f1d1c9723ef8d01b4accacf8badb3d, "Initial commit", 2023-05-31). LLaVA's
llava/eval/eval_pope.py reads answers the same way.

Written from reading the source. The script reads two JSON-lines files (ans_file, label_file) at module level
and prints; here the same loop is a function of the answer texts and the labels, in order, returning what it
prints. Kept as the script has them:
- an answer keeps only the text before its first '.'; commas are removed; it is split on single spaces
  (text.split(' '), so "No\\n" is one word and is not "No"); it is 'no' when 'No', 'not' or 'no' is one of
  the words, else 'yes' (an empty answer is 'yes');
- a label is negative when it equals 'no', positive otherwise ('No', 'yes ', 'maybe' are all positive);
- precision = TP / (TP + FP), recall = TP / (TP + FN), f1 = 2PR / (P + R), acc = (TP + TN) / all,
  yes_ratio = (answers read 'yes') / len(answers); each division raises ZeroDivisionError as the script
  does (a model that never answers yes, a label file with no positives, no answers);
- the answers and labels are paired by zip (a longer list's tail is ignored by the counts, but not by
  yes_ratio, which counts every answer).
"""


def read_answer(text):
    # Only keep the first sentence
    if text.find('.') != -1:
        text = text.split('.')[0]

    text = text.replace(',', '')
    words = text.split(' ')
    if 'No' in words or 'not' in words or 'no' in words:
        return 'no'
    else:
        return 'yes'


def evaluate(answer_texts, labels):
    """answer_texts: each answer['answer']; labels: each label file row's 'label'. Returns the printed
    numbers: {"TP", "FP", "TN", "FN", "accuracy", "precision", "recall", "f1", "yes_ratio"}."""
    answers = [{'answer': t} for t in answer_texts]
    label_list = list(labels)

    for answer in answers:
        answer['answer'] = read_answer(answer['answer'])

    for i in range(len(label_list)):
        if label_list[i] == 'no':
            label_list[i] = 0
        else:
            label_list[i] = 1

    pred_list = []
    for answer in answers:
        if answer['answer'] == 'no':
            pred_list.append(0)
        else:
            pred_list.append(1)

    pos = 1
    neg = 0
    yes_ratio = pred_list.count(1) / len(pred_list)

    TP, TN, FP, FN = 0, 0, 0, 0
    for pred, label in zip(pred_list, label_list):
        if pred == pos and label == pos:
            TP += 1
        elif pred == pos and label == neg:
            FP += 1
        elif pred == neg and label == neg:
            TN += 1
        elif pred == neg and label == pos:
            FN += 1

    precision = float(TP) / float(TP + FP)
    recall = float(TP) / float(TP + FN)
    f1 = 2*precision*recall / (precision + recall)
    acc = (TP + TN) / (TP + TN + FP + FN)
    return {"TP": TP, "FP": FP, "TN": TN, "FN": FN, "accuracy": acc, "precision": precision, "recall": recall,
            "f1": f1, "yes_ratio": yes_ratio}

"""Port of ScienceQA's answer extraction and accuracy (lupantech/ScienceQA @
360b71cb6a36b9e3161dc9b65e9d86458b7d13a3), written from reading the source:

- models/run_gpt3.py get_gpt3_result: pattern re.compile(r'The answer is ([A-Z]).'), res = findall(output);
  exactly one match gives the letter, otherwise "FAILED"; get_pred_idx(prediction, choices, options): the
  letter's index when it is one of options[:len(choices)] (options A..E), otherwise
  random.choice(range(len(choices))): a guess.
- tools/evaluate_acc.py get_scores: true_false = (label == pred) per question; accuracy = #true / num * 100.
"""
import random
import re

OPTIONS = ["A", "B", "C", "D", "E"]  # run_gpt3.py --options default


def extract(output):
    """get_gpt3_result's extraction: the letter, or "FAILED"."""
    pattern = re.compile(r'The answer is ([A-Z]).')
    res = pattern.findall(output)
    if len(res) == 1:
        answer = res[0]  # 'A', 'B', ...
    else:
        answer = "FAILED"
    return answer


def get_pred_idx(prediction, choices, options, rng=random):
    if prediction in options[:len(choices)]:
        return options.index(prediction)
    else:
        return rng.choice(range(len(choices)))


def accuracy(labels, preds):
    correct = sum(1 for label, pred in zip(labels, preds) if label == pred)
    return correct / len(labels) * 100

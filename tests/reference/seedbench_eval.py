"""Port of SEED-Bench's accuracy: AILab-CVC/SEED-Bench eval.py @ 991e849be802b0de1cd4d45d929bf18e249f5b54 (the
file as committed in 77617150aa1f8606543b6976214efeafbaabe747, 2023-08-16), the end of run_inference.

Written from reading the source. The script ranks the four options by the model's loss and writes
{'question_id', 'prediction'} records; its accuracy loop then reads item['prediction'], item['gt'] and
item['q_type_id'] from those records (which the script never sets: as committed the loop raises KeyError;
here each record carries gt = the question's 'answer' and q_type_id = its 'question_type_id', which is what
the loop means). Kept as the loop has them:
- per dimension (question_type_id): correct_counts[t] / type_counts[t] * 100, with correct = (pred == gt),
  strings compared as given;
- correct_counts[t] is only set when a question of t is answered correctly, so a dimension with no correct
  answer raises KeyError, as the script does;
- the total is total_correct / total_count * 100 over every question (micro, not the mean of dimensions);
- dimensions come in order of first appearance.
"""


def accuracy(answer_list):
    """answer_list: [{'prediction', 'gt', 'q_type_id'}]. Returns ({q_type_id: accuracy %}, total accuracy %)."""
    type_counts = {}
    correct_counts = {}

    for item in answer_list:
        pred, gt, data_type = item['prediction'], item['gt'], item['q_type_id']

        type_counts[data_type] = type_counts.get(data_type, 0) + 1
        if pred == gt:
            correct_counts[data_type] = correct_counts.get(data_type, 0) + 1

    per_type = {}
    total_count = 0
    total_correct = 0
    for data_type in type_counts.keys():
        accuracy = correct_counts[data_type] / type_counts[data_type] * 100
        per_type[data_type] = accuracy

        total_count += type_counts[data_type]
        total_correct += correct_counts[data_type]

    total_accuracy = total_correct / total_count * 100
    return per_type, total_accuracy

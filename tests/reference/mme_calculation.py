"""Port of MME's scorer: eval_tool/calculation.py of the MME authors' evaluation tool, distributed as
tools/eval_tool.zip on the Evaluation branch of BradyFU/Awesome-Multimodal-Large-Language-Models
@ dd2950902889cd614d4edf606827240166d29381 (the zip last changed in 1c1d69e138b57cf8b0400427927bfb8ed4285458,
2023-07-01, "Add files via upload"); eval_tool/readme.txt in the same zip gives the input format.

Written from reading the source. Input: one file per subtask, lines "image\\tquestion\\tgt\\tresponse" (the
readme: a response's "\\n" must be deleted so that it stays on one line), read with readlines() and cut into
consecutive chunks of two (one image = two questions; the chunk must have two lines). Each line is split on
"\\t" into four fields; gt and response are lowercased; gt must be "yes" or "no"; parse_pred_ans: the response
itself when it is "yes" or "no", else "yes" when "yes" is in its first 4 characters, else "no" when "no" is,
else "other". acc = sklearn accuracy_score over the subtask's questions ("other" is wrong), acc_plus = images
with both answers right / images, subtask score = acc*100 + acc_plus*100 (summed in that order from 0), and
a total per eval type (Perception: 10 subtasks, Cognition: 4) summed in eval_type_dict's order from 0.

Adaptations, none of which changes a number: the subtask files are given as {name: lines} (a missing name
raises KeyError where the script's open() raises FileNotFoundError), results are returned instead of
printed (the acc and acc_plus fractions beside the score), accuracy_score is computed in plain Python (the
mean of 0/1 matches: count / n; like sklearn 1.9.1 it raises ValueError on no samples), and compute_metric
keeps only what enters the score. It keeps the script's crash on data: sklearn's confusion_matrix raises
ValueError on empty input, which the script gives it when every answer of a subtask is "other" (checked with
scikit-learn 1.9.1). TP/FN/TN/FP, precision and recall are left out (printed nowhere, in no score).
"""

eval_type_dict = {
    "Perception": ["existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork",
                   "OCR"],
    "Cognition": ["commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning"],
}


def _accuracy_score(y_true, y_pred):
    # sklearn.metrics.accuracy_score(normalize=True): the average of (y_true == y_pred); ValueError on no samples
    if not y_true:
        raise ValueError("Found empty input array (e.g., `y_true` or `y_pred`) while a minimum of 1 sample is "
                         "required.")
    return sum(1 for t, p in zip(y_true, y_pred) if t == p) / len(y_true)


class calculate_metrics:
    def divide_chunks(self, l, n=2):  # noqa: E741 - the script's name
        for i in range(0, len(l), n):
            yield l[i:i + n]

    def parse_pred_ans(self, pred_ans):
        pred_label = None
        if pred_ans in ["yes", "no"]:
            pred_label = pred_ans
        else:
            prefix_pred_ans = pred_ans[:4]

            if "yes" in prefix_pred_ans:
                pred_label = "yes"
            elif "no" in prefix_pred_ans:
                pred_label = "no"
            else:
                pred_label = "other"

        return pred_label

    def compute_metric(self, gts, preds):
        assert len(gts) == len(preds)

        label_map = {"yes": 1, "no": 0, "other": -1}
        gts = [label_map[x] for x in gts]
        preds = [label_map[x] for x in preds]

        acc = _accuracy_score(gts, preds)

        clean_gts = []
        clean_preds = []
        other_num = 0
        for gt, pred in zip(gts, preds):
            if pred == -1:
                other_num += 1
                continue
            clean_gts.append(gt)
            clean_preds.append(pred)

        if not clean_gts:  # confusion_matrix(clean_gts, clean_preds, labels=[1, 0]) on empty input
            raise ValueError("Found empty input array (e.g., `y_true` or `y_pred`) while a minimum of 1 sample "
                             "is required.")

        metric_dict = {"other_num": other_num, "acc": acc}
        return metric_dict

    def process_result(self, results):
        """results: {subtask name: the lines of its file}. Returns {eval type: {"total": score, "tasks": {name:
        {"acc", "acc_plus", "score", "other_num"}}}} (acc and acc_plus as fractions, as the script holds them)."""
        out = {}
        for eval_type, task_name_list in eval_type_dict.items():
            scores = 0
            task_score_dict = dict()
            task_details = {}

            for task_name in task_name_list:
                lines = results[task_name]
                chunk_lines = list(self.divide_chunks(lines))  # one image corresponds to two questions

                img_num = len(chunk_lines)
                task_other_ans_num = 0
                task_score = 0
                acc_plus_correct_num = 0
                gts = []
                preds = []

                for img_items in chunk_lines:
                    assert len(img_items) == 2
                    img_correct_num = 0

                    for img_item in img_items:
                        img_name, question, gt_ans, pred_ans = img_item.split("\t")

                        gt_ans = gt_ans.lower()
                        pred_ans = pred_ans.lower()

                        assert gt_ans in ["yes", "no"]  # gt can only be yes or no.

                        pred_ans = self.parse_pred_ans(pred_ans)
                        assert pred_ans in ["yes", "no", "other"]

                        gts.append(gt_ans)
                        preds.append(pred_ans)

                        if gt_ans == pred_ans:
                            img_correct_num += 1

                        if pred_ans not in ["yes", "no"]:
                            task_other_ans_num += 1

                    if img_correct_num == 2:
                        acc_plus_correct_num += 1

                metric_dict = self.compute_metric(gts, preds)
                acc_plus = acc_plus_correct_num / img_num
                metric_dict["acc_plus"] = acc_plus

                for k, v in metric_dict.items():
                    if k in ["acc", "acc_plus"]:
                        task_score += v * 100

                task_score_dict[task_name] = task_score
                task_details[task_name] = {"acc": metric_dict["acc"], "acc_plus": acc_plus, "score": task_score,
                                           "other_num": task_other_ans_num}

                scores += task_score

            out[eval_type] = {"total": scores, "tasks": task_details}
        return out


def to_lines(rows):
    """The eval tool's input from rows (in pair order): {subtask: lines}, each line as readlines() gives it,
    the response's line breaks deleted as readme.txt asks (a "\\r" would also end a line in text mode)."""
    out = {}
    for r in rows:
        response = r["prediction"].replace("\r", "").replace("\n", "")
        out.setdefault(r["subtask"], []).append(f"{r['image']}\t{r['question']}\t{r['answer']}\t{response}\n")
    return out

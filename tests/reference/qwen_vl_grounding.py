"""Port of Qwen-VL's RefCOCO/+/g scoring: QwenLM/Qwen-VL eval_mm/evaluate_grounding.py at
e6bbb9dd9e9fc44a4498d372e83b3b172dc1d808 ("update evaluation scripts", 2023-08-25, the file's last change;
identical at cfe66a7cc5df6ca8bff95c2b8b02bc0a1cbdc72c and at master aa00ed04091eea5fcdd32985e7915f1c53e7d599),
written from reading the source.

The scoring part of its `__main__` (rank 0, after all_gather_object), per output {'answer', 'gt_bbox', 'hw'}:
re.findall(PATTERN, answer)[0]; either half without ',' -> box (0., 0., 0., 0.); else each half split on ','
and unpacked into two float()s; any exception (no match, a half that is not two floats) -> (0., 0., 0., 0.);
torch.float32 tensors: the box / 999, x coordinates * hw[1] (width), y coordinates * hw[0] (height); the
script's own box_iou (torchvision's box_area; intersection clamped at 0; union = area1 + area2 - inter; no
eps); iou.item() >= 0.5 counts as correct; 'Precision @ 1' = correct / total_cnt.

box_area is torchvision.ops.boxes.box_area (pytorch/vision torchvision/ops/boxes.py @
2f3a43fbca2070ca6f0a863e7e92fcd750eb0c1a: (x2 - x1) * (y2 - y1), _upcast leaves float32 as it is); torchvision
is not a dependency here, so it is written out. Left out: the model, the prompt and the DataLoader (whose
drop_last=True drops each rank's last incomplete batch: not a scoring matter).
"""
import re

import torch

PATTERN = re.compile(r'\((.*?)\),\((.*?)\)')


def box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1, boxes2):
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)

    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])  # [N,M,2]
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])  # [N,M,2]

    wh = (rb - lt).clamp(min=0)  # [N,M,2]
    inter = wh[:, :, 0] * wh[:, :, 1]  # [N,M]

    union = area1[:, None] + area2 - inter

    iou = inter / union
    return iou, union


def predict_bbox_of(answer):
    """The box the script reads from an answer (before / 999)."""
    predict_bbox = re.findall(PATTERN, answer)
    try:
        if ',' not in predict_bbox[0][0] or ',' not in predict_bbox[0][1]:
            predict_bbox = (0., 0., 0., 0.)
        else:
            x1, y1 = [float(tmp) for tmp in predict_bbox[0][0].split(',')]
            x2, y2 = [float(tmp) for tmp in predict_bbox[0][1].split(',')]
            predict_bbox = (x1, y1, x2, y2)
    except:  # noqa: E722  (the script's bare except)
        predict_bbox = (0., 0., 0., 0.)
    return predict_bbox


def iou_of(output):
    predict_bbox = predict_bbox_of(output['answer'])
    target_bbox = torch.tensor(output['gt_bbox'], dtype=torch.float32).view(-1, 4)
    predict_bbox = torch.tensor(predict_bbox, dtype=torch.float32).view(-1, 4) / 999
    predict_bbox[:, 0::2] *= output['hw'][1]
    predict_bbox[:, 1::2] *= output['hw'][0]
    iou, _ = box_iou(predict_bbox, target_bbox)
    return iou.item()


def is_correct(output):
    return iou_of(output) >= 0.5


def precision_at_1(merged_outputs):
    correct = total_cnt = 0
    for i, output in enumerate(merged_outputs):
        iou = iou_of(output)
        total_cnt += 1
        if iou >= 0.5:
            correct += 1
    return correct / total_cnt

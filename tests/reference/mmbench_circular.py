"""Port of MMBench's rule-based choice matching and CircularEval as VLMEvalKit (the MMBench authors' toolkit)
runs them under the `exact_matching` policy (no LLM judge): open-compass/VLMEvalKit @
e8e78f05f3080fe28154f2130321f17951c3be94, written from reading the source (not fixed):

- vlmeval/utils/matching_util.py: can_infer_option, can_infer_text, can_infer;
- vlmeval/dataset/utils/multiple_choice.py: build_choices, prefetch_answer, extract_answer_from_item (model None:
  "Z"), prefetch_circular_group, eval_circular_group, eval_vanilla, mcq_circular_eval, mcq_vanilla_eval, report_acc;
- vlmeval/dataset/image_mcq.py ImageMCQDataset.evaluate_heuristic: the frame's preparation (sorted by index,
  predictions as str, column names lowercased except the option letters) and, under PRINT_VANILLA, "vanilla_0"
  (rows whose index == g_index).

Only what the exact-matching path reaches is ported: the LLM call and the random pick after it are not.
Rows are dicts with index (int; a shifted copy is index + k * 1e6), question, A..D (None/NaN = no option),
answer, category, l2-category (or L2-category), split, prediction.
"""
import copy as cp
import os
import re
import string
from collections import defaultdict

import numpy as np
import pandas as pd

MMB_abbrs = {
    'coarse_perception': 'CP',
    'finegrained_perception (instance-level)': 'FP-S',
    'finegrained_perception (cross-instance)': 'FP-C',
    'logic_reasoning': 'LR',
    'relation_reasoning': 'RR',
    'attribute_reasoning': 'AR'
}

_VERBOSE_ANSWER_RE = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")


# ---- vlmeval/utils/matching_util.py ----

def can_infer_option(answer, choices):
    verbose = os.environ.get('VERBOSE', 0)
    if 'Failed to obtain answer via API' in answer:
        return False

    reject_to_answer = [
        "Sorry, I can't help with images of people yet.", "I can't process this file.",
        "I'm sorry, but without the image provided", 'Cannot determine the answer'
    ]
    for err in reject_to_answer:
        if err in answer:
            return 'Z'

    def count_choice(splits, choices, prefix='', suffix=''):
        cnt = 0
        for c in choices:
            if prefix + c + suffix in splits:
                cnt += 1
        return cnt

    answer_mod = cp.copy(answer)
    chars = '.()[],:;!*#{}'
    for c in chars:
        answer_mod = answer_mod.replace(c, ' ')

    splits = [x.strip() for x in answer_mod.split()]
    count = count_choice(splits, choices)

    if count == 1:
        for ch in choices:
            if 'A' in splits and len(splits) > 3 and verbose:
                return False
            if ch in splits and splits.index(ch) > (len(splits) - 5):
                return ch
    elif count == 0 and count_choice(splits, {'Z', ''}) == 1:
        return 'Z'

    match = _VERBOSE_ANSWER_RE.search(answer or "")
    if match and match.group(1).upper() in choices:
        return match.group(1).upper()

    return False


def can_infer_text(answer, choices):
    answer = answer.lower()
    if len(answer) > 2 * sum(len(str(v)) for v in choices.values()):
        return False
    assert isinstance(choices, dict)
    for k in choices:
        assert k in string.ascii_uppercase
        choices[k] = str(choices[k]).lower()
    cands = []
    for k in choices:
        if choices[k] in answer:
            cands.append(k)
    if len(cands) == 1:
        return cands[0]
    return False


def can_infer(answer, choices):
    answer = str(answer)
    copt = can_infer_option(answer, choices)
    return copt if copt else can_infer_text(answer, choices)


# ---- vlmeval/dataset/utils/multiple_choice.py ----

def build_choices(item):
    ret = {}
    for ch in string.ascii_uppercase:
        if ch in item and (not pd.isna(item[ch])):
            ret[ch] = item[ch]
    return ret


def prefetch_answer(item):
    choices = build_choices(item)
    return can_infer(item['prediction'], choices)


def extract_answer_from_item(model, item, dataset_name=None):
    choices = build_choices(item)
    ret = can_infer(item['prediction'], choices)
    if ret:
        return dict(opt=ret, log=item['prediction'])
    if model is None:
        return dict(opt='Z', log='Failed in Prefetch, no GPT-based answer matching under `exact_matching` policy.')
    raise NotImplementedError("the LLM judge path is not ported")


def prefetch_circular_group(sub_data, verbose=False):
    lt = len(sub_data)
    GT, PRED = [], []
    for i in range(lt):
        item = sub_data.iloc[i]
        GT.append(item['GT'])
        PRED.append(prefetch_answer(item))
        if PRED[-1] and (GT[-1] != PRED[-1]):
            return dict(hit=0, log='Failed in Prefetching Rolling')
    flag = True
    for g, p in zip(GT, PRED):
        if g != p:
            flag = False
    ret = (dict(hit=1, log='Succeed During Pre-fetching'), ) if flag else (None, )
    ret = ret + (GT, PRED) if verbose else ret
    return ret if len(ret) > 1 else ret[0]


def eval_vanilla(model, item, dataset_name=None):
    res = extract_answer_from_item(model, item, dataset_name=dataset_name)
    opt = res['opt']
    return dict(hit=1 if opt == item['GT'] else 0)


def eval_circular_group(model, sub_data, dataset_name=None):
    prefetched = prefetch_circular_group(sub_data, verbose=True)
    if isinstance(prefetched, dict) and 'hit' in prefetched:
        return prefetched
    res, GT, PRED = prefetch_circular_group(sub_data, verbose=True)
    if res is not None:
        return res
    lt = len(sub_data)
    for i in range(lt):
        if PRED[i]:
            continue
        res = extract_answer_from_item(model, sub_data.iloc[i], dataset_name=dataset_name)
        PRED[i] = res['opt']
        if PRED[i] != GT[i]:
            return dict(hit=0)
    return dict(hit=1)


def mcq_vanilla_eval(model, data, meta):
    answer_map = {i: c for i, c in zip(meta['index'], meta['answer'])}
    data = data[data['index'].isin(answer_map)].copy()
    data['GT'] = [answer_map[idx] for idx in data['index']]
    result = {}
    for i in range(len(data)):
        item = data.iloc[i]
        result[item['index']] = eval_vanilla(model, item)
    data['hit'] = [result[i]['hit'] for i in data['index']]
    data.pop('GT')
    return data


def mcq_circular_eval(model, data, meta):
    """The exact-matching path: groups the prefetch cannot settle go to eval_circular_group's model=None branch
    (mcq_circular_eval itself writes hit=0 for them; the same value)."""
    answer_map = {i: c for i, c in zip(meta['index'], meta['answer'])}
    if 'g_index' not in data:
        data['g_index'] = [int(x % 1e6) for x in data['index']]
    data = data[data['index'].isin(answer_map)].copy()
    data['GT'] = [answer_map[idx] for idx in data['index']]
    data['tmp_flag'] = [x == y for x, y in zip(data['index'], data['g_index'])]
    data_main = data[data['tmp_flag']].copy()
    data_main.pop('tmp_flag')

    result = {}
    for i in range(len(data_main)):
        idx = data_main.iloc[i]['index']
        sub_data = data[data['g_index'] == idx]
        pf = prefetch_circular_group(sub_data, verbose=False)
        if pf is not None:
            result[idx] = pf
        elif model is None:
            result[idx] = dict(hit=0, log='Failed in Prefetch, no GPT-based answer matching under '
                                          '`exact_matching` policy.')
        else:
            result[idx] = eval_circular_group(model, sub_data)
    data_main['hit'] = [result[i]['hit'] for i in data_main['index']]
    data_main.pop('GT')
    return data_main


def report_acc(df):
    res = defaultdict(list)
    if 'split' in df:
        splits = list(set(df['split']))
        res['split'] = splits
    else:
        df['split'] = ['none'] * len(df)
        res['split'] = ['none']
    for group in [None, 'l2-category', 'category']:
        if group is None:
            res['Overall'] = [np.mean(df[df['split'] == sp]['hit']) for sp in res['split']]
        elif group not in df:
            continue
        else:
            abilities = list(set(df[group]))
            abilities.sort()
            for ab in abilities:
                ab_name = MMB_abbrs[ab] if ab in MMB_abbrs else ab
                sub_df = df[df[group] == ab]
                res[ab_name] = [np.mean(sub_df[sub_df['split'] == sp]['hit']) for sp in res['split']]
    return pd.DataFrame(res)


# ---- vlmeval/dataset/image_mcq.py evaluate_heuristic (exact matching) ----

def _prepare(rows):
    data = pd.DataFrame(rows)
    data['index'] = [int(x) for x in data['index']]
    data = data.sort_values(by='index')
    data['prediction'] = [str(x) for x in data['prediction']]
    for k in list(data.keys()):
        data[k.lower() if k not in list(string.ascii_uppercase) else k] = data.pop(k)
    return data


def evaluate_circular(rows):
    """report_acc of the circular evaluation: a one-row frame (one split) with Overall, the l2 abbreviations
    and the categories."""
    data = _prepare(rows)
    meta = pd.DataFrame(rows)
    meta['index'] = [int(x) for x in meta['index']]
    return report_acc(mcq_circular_eval(None, data, meta))


def evaluate_vanilla_circ0(rows):
    """PRINT_VANILLA's vanilla_0: rows whose index equals their g_index, each scored alone."""
    data = _prepare(rows)
    meta = pd.DataFrame(rows)
    meta['index'] = [int(x) for x in meta['index']]
    offset = 1e6
    circ0 = data[data['index'] <= offset]
    return report_acc(mcq_vanilla_eval(None, circ0, meta))

"""Ports of the general-VQA scoring of QwenLM/Qwen-VL eval_mm/ at cfe66a7cc5df6ca8bff95c2b8b02bc0a1cbdc72c
("add chartqa gqa ocrvqa ai2d evaluation files"; evaluate_vqa.py and vqa_eval.py unchanged at master
aa00ed04091eea5fcdd32985e7915f1c53e7d599), written from reading the source:

- vqa_score (vqav2_val, okvqa_val, vizwiz_val, textvqa_val): VQAEval.evaluate of eval_mm/vqa_eval.py (the LAVIS
  copy of the 2016 VQA script, file added at 48454c3): resAns = answer with '\\n', '\\t' -> ' ', strip(),
  processPunctuation, processDigitArticle, ALWAYS; the gold answer dicts are processPunctuation'd in place only
  when the raw answers are not all the same (never stripped, lowercased or digit/article-processed); the
  leave-one-out drops the answer dicts that compare equal (`item != gtAnsDatum`), one per answer when each
  carries its answer_id as in the VQA/OK-VQA annotation files (modelled so here); acc = min(1, n / 3).
- gqa_testdev ('accuracy'): the answer post-processing inside `if 'gqa' in args.dataset`, then
  evaluate_exact_match_accuracy: max over the annotations (a string becomes [it]) of
  answer.strip().lower() == ann.strip().lower(); the dataset score is sum / len.
"""
import re

from reference.vqa_eval_official import CONTRACTIONS


class QwenVLVQAEval:
    def __init__(self):
        self.contractions = dict(CONTRACTIONS)  # vqa_eval.py's table is the 2016 one, entry for entry
        self.manualMap = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                          "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
        self.articles = ["a", "an", "the"]
        self.periodStrip = re.compile(r"(?!<=\d)(\.)(?!\d)")
        self.commaStrip = re.compile(r"(\d)(,)(\d)")
        self.punct = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
                      ">", "<", "@", "`", ",", "?", "!"]

    def processPunctuation(self, inText):
        outText = inText
        for p in self.punct:
            if (p + " " in inText or " " + p in inText) or (re.search(self.commaStrip, inText) is not None):
                outText = outText.replace(p, "")
            else:
                outText = outText.replace(p, " ")
        outText = self.periodStrip.sub("", outText, re.UNICODE)
        return outText

    def processDigitArticle(self, inText):
        outText = []
        tempText = inText.lower().split()
        for word in tempText:
            word = self.manualMap.setdefault(word, word)
            if word not in self.articles:
                outText.append(word)
        for wordId, word in enumerate(outText):
            if word in self.contractions:
                outText[wordId] = self.contractions[word]
        return " ".join(outText)

    def question_accuracy(self, answer, gt_answers):
        """One iteration of evaluate()'s loop; returns avgGTAcc (before setEvalQA's *100 and rounding)."""
        answers = [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(gt_answers)]
        resAns = answer
        resAns = resAns.replace("\n", " ")
        resAns = resAns.replace("\t", " ")
        resAns = resAns.strip()
        resAns = self.processPunctuation(resAns)
        resAns = self.processDigitArticle(resAns)
        gtAcc = []
        gtAnswers = [ans["answer"] for ans in answers]
        if len(set(gtAnswers)) > 1:
            for ansDic in answers:
                ansDic["answer"] = self.processPunctuation(ansDic["answer"])
        for gtAnsDatum in answers:
            otherGTAns = [item for item in answers if item != gtAnsDatum]
            matchingAns = [item for item in otherGTAns if item["answer"] == resAns]
            acc = min(1, float(len(matchingAns)) / 3)
            gtAcc.append(acc)
        return float(sum(gtAcc)) / len(gtAcc)


def gqa_postprocess(response):
    """evaluate_vqa.py, metric 'accuracy', `if 'gqa' in args.dataset:` for each entry['answer']."""
    response = response.strip().split('.')[0].split(',')[0].split('!')[0].lower()
    if 'is ' in response:
        response = response.split('is ')[1]
    if 'are ' in response:
        response = response.split('are ')[1]
    if 'a ' in response:
        response = response.split('a ')[1]
    if 'an ' in response:
        response = response.split('an ')[1]
    if 'the ' in response:
        response = response.split('the ')[1]
    if ' of' in response:
        response = response.split(' of')[0]
    response = response.strip()
    return response


def evaluate_exact_match_accuracy(entries):
    scores = []
    for elem in entries:
        if isinstance(elem['annotation'], str):
            elem['annotation'] = [elem['annotation']]
        score = max([
            (1.0 if (elem['answer'].strip().lower() == ann.strip().lower()) else 0.0)
            for ann in elem['annotation']
        ])
        scores.append(score)
    return sum(scores) / len(scores)


def gqa_accuracy(entries):
    """The gqa_testdev branch: post-process every entry's answer, then evaluate_exact_match_accuracy."""
    for entry in entries:
        entry['answer'] = gqa_postprocess(entry['answer'])
    return evaluate_exact_match_accuracy(entries)

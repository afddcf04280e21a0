"""Port of the VizWiz-VQA accuracy: VQAEval.evaluate of the VizWiz-VQA API (Qing Li), file
PythonEvaluationTools/vqaEvaluation/vqaEval.py, as vendored in peyajm29/VizWiz-VQA at
evaluation/API/PythonEvaluationTools/vqaEvaluation/vqaEval.py @ 529efa44d6bb54ce51f373cbb688147601cb87cc
(2024-04-28, "add mt eval"). The same loop is in TRI-ML/vlm-evaluation vlm_eval/util/evaluation/vizwiz/eval.py
@ 7292fd6727dbc40c1ad6051bf090d925f26f3b3a, whose contraction table has the typographic apostrophes replaced
by backticks; the table here is the vendored API's, with U+2019 where the file has it.

Written from reading the source: the prediction (res[img]['answer']) gets replace('\\n', ' '),
replace('\\t', ' '), strip(), processPunctuation, processDigitArticle; the annotation's answers are used AS
STORED (no cleaning, no normalization, whatever they look like); for each answer i, the others are those at
positions j != i, matched with item['answer'] == resAns; acc = min(1, float(len(matching)) / 3); the
question's accuracy is float(sum(gtAcc)) / len(gtAcc). Kept quirks: periodStrip's lookahead, re.UNICODE
passed as `count`, manualMap.setdefault. The caption metrics and the answerability AP/F1 it also computes
are left out (they do not enter the accuracy).
"""
import re

CONTRACTIONS = {
    'aint': "ain't", 'arent': "aren't", 'cant': "can't", 'couldve': "could've", 'couldnt': "couldn't",
    "couldn'tve": 'couldn’t’ve', 'couldnt’ve': 'couldn’t’ve', 'didnt': 'didn’t', 'doesnt': 'doesn’t',
    'dont': 'don’t', 'hadnt': 'hadn’t', 'hadnt’ve': 'hadn’t’ve', "hadn'tve": 'hadn’t’ve', 'hasnt': 'hasn’t',
    'havent': 'haven’t', 'hed': 'he’d', 'hed’ve': 'he’d’ve', 'he’dve': 'he’d’ve', 'hes': 'he’s', 'howd': 'how’d',
    'howll': 'how’ll', 'hows': 'how’s', 'Id’ve': 'I’d’ve', 'I’dve': 'I’d’ve', 'Im': 'I’m', 'Ive': 'I’ve',
    'isnt': 'isn’t', 'itd': 'it’d', 'itd’ve': 'it’d’ve', 'it’dve': 'it’d’ve', 'itll': 'it’ll', 'let’s': 'let’s',
    'maam': 'ma’am', 'mightnt': 'mightn’t', 'mightnt’ve': 'mightn’t’ve', 'mightn’tve': 'mightn’t’ve',
    'mightve': 'might’ve', 'mustnt': 'mustn’t', 'mustve': 'must’ve', 'neednt': 'needn’t', 'notve': 'not’ve',
    'oclock': 'o’clock', 'oughtnt': 'oughtn’t', 'ow’s’at': '’ow’s’at', '’ows’at': '’ow’s’at', '’ow’sat': '’ow’s’at',
    'shant': 'shan’t', 'shed’ve': 'she’d’ve', 'she’dve': 'she’d’ve', 'she’s': 'she’s', 'shouldve': 'should’ve',
    'shouldnt': 'shouldn’t', 'shouldnt’ve': 'shouldn’t’ve', 'shouldn’tve': 'shouldn’t’ve',
    'somebody’d': 'somebodyd', 'somebodyd’ve': 'somebody’d’ve', 'somebody’dve': 'somebody’d’ve',
    'somebodyll': 'somebody’ll', 'somebodys': 'somebody’s', 'someoned': 'someone’d', 'someoned’ve': 'someone’d’ve',
    'someone’dve': 'someone’d’ve', 'someonell': 'someone’ll', 'someones': 'someone’s', 'somethingd': 'something’d',
    'somethingd’ve': 'something’d’ve', 'something’dve': 'something’d’ve', 'somethingll': 'something’ll',
    'thats': 'that’s', 'thered': 'there’d', 'thered’ve': 'there’d’ve', 'there’dve': 'there’d’ve',
    'therere': 'there’re', 'theres': 'there’s', 'theyd': 'they’d', 'theyd’ve': 'they’d’ve', 'they’dve': 'they’d’ve',
    'theyll': 'they’ll', 'theyre': 'they’re', 'theyve': 'they’ve', 'twas': '’twas', 'wasnt': 'wasn’t',
    'wed’ve': 'we’d’ve', 'we’dve': 'we’d’ve', 'weve': "we've", 'werent': 'weren’t', 'whatll': 'what’ll',
    'whatre': 'what’re', 'whats': 'what’s', 'whatve': 'what’ve', 'whens': 'when’s', 'whered': 'where’d',
    'wheres': "where's", 'whereve': 'where’ve', 'whod': 'who’d', 'whod’ve': 'who’d’ve', 'who’dve': 'who’d’ve',
    'wholl': 'who’ll', 'whos': 'who’s', 'whove': "who've", 'whyll': 'why’ll', 'whyre': 'why’re', 'whys': 'why’s',
    'wont': 'won’t', 'wouldve': 'would’ve', 'wouldnt': 'wouldn’t', 'wouldnt’ve': 'wouldn’t’ve',
    'wouldn’tve': 'wouldn’t’ve', 'yall': 'y’all', 'yall’ll': 'y’all’ll', 'y’allll': 'y’all’ll',
    'yall’d’ve': 'y’all’d’ve', 'y’alld’ve': 'y’all’d’ve', 'y’all’dve': 'y’all’d’ve', 'youd': 'you’d',
    'youd’ve': 'you’d’ve', 'you’dve': 'you’d’ve', 'youll': 'you’ll', 'youre': 'you’re', 'youve': 'you’ve',
}


class VizWizVQAEval:
    def __init__(self):
        self.contractions = dict(CONTRACTIONS)
        self.manualMap = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                          "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
        self.articles = ["a", "an", "the"]
        self.periodStrip = re.compile(r"(?!<=\d)(\.)(?!\d)")
        self.commaStrip = re.compile(r"(\d)(\,)(\d)")
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

    def image_accuracy(self, res_answer, gt_answers):
        """One iteration of evaluate()'s loop over images; returns avgGTAcc (before *100 and rounding)."""
        answers = [{"answer": a, "answer_confidence": "yes"} for a in gt_answers]
        resAns = res_answer
        resAns = resAns.replace("\n", " ")
        resAns = resAns.replace("\t", " ")
        resAns = resAns.strip()
        resAns = self.processPunctuation(resAns)
        resAns = self.processDigitArticle(resAns)
        gtAcc = []
        for i, ans in enumerate(answers):
            otherGTAns = [item for j, item in enumerate(answers) if i != j]
            matchingAns = [item for item in otherGTAns if item["answer"] == resAns]
            acc = min(1, float(len(matchingAns)) / 3)
            gtAcc.append(acc)
        return float(sum(gtAcc)) / len(gtAcc)


def evaluate(res_answers, gt_answer_lists):
    """setAccuracy's overall (without the *100 and round(, 2)) and the per-image accuracies."""
    ev = VizWizVQAEval()
    accQA = [ev.image_accuracy(r, g) for r, g in zip(res_answers, gt_answer_lists)]
    return float(sum(accQA)) / len(accQA), accQA

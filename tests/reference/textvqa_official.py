"""Ports of the two TextVQA accuracies, written from reading the sources.

1. TextVQA's own evaluator: facebookresearch/mmf, mmf/utils/m4c_evaluators.py at
   2dc099af7ce267561e4c2ae033c27eb36be5b3ea: EvalAIAnswerProcessor (word_tokenize, then
   newline/tab cleaning, process_punctuation, process_digit_article) on the prediction and on each
   of the 10 answers, and TextVQAAccuracyEvaluator (_compute_answer_scores: for each unique
   processed answer, the mean over leaving each of the 10 (index, answer) pairs out of
   min(1, #remaining equal / 3); eval_pred_list: the prediction's entry, 0.0 when absent; the
   mean over questions). Same quirks kept: NUMBER_MAP.setdefault on the class dict, COMMA_STRIP
   searched after word_tokenize has already dropped every ',', re.UNICODE passed as `count`.
2. Qwen-VL's TextVQA score: QwenLM/Qwen-VL eval_mm/evaluate_vqa.py at
   cfe66a7cc5df6ca8bff95c2b8b02bc0a1cbdc72c (textvqa_val: metric 'vqa_score' -> VQA(annotation,
   question), vqa.loadRes, VQAEval(vqa, results, n=2).evaluate(); the model's answer is
   tokenizer.decode(...).strip(), nothing else) with eval_mm/vqa_eval.py (VQAEval, the LAVIS copy;
   same blob fa47045 at 48454c3, cfe66a7 and master aa00ed0). evaluate() is ported per question:
   the result answer gets the newline/tab cleaning, strip, processPunctuation and
   processDigitArticle always; the gold answers are compared as stored, only processPunctuation'd
   (no strip, no lowercase, no digit/article step) and only when they are not all identical; the
   leave-one-out drops `item != gtAnsDatum` by dict equality. Qwen-VL's converted
   textvqa_val_annotations.json (Alibaba OSS) was not readable offline: the answer dicts are
   assumed to carry distinct answer_id values as the VQA format does, so exactly one answer is left
   out each time.
"""
import re


# ---- 1. mmf/utils/m4c_evaluators.py ----

class EvalAIAnswerProcessor:
    CONTRACTIONS = {
        "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
        "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
        "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
        "hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
        "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've",
        "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
        "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
        "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't",
        "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock",
        "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
        "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
        "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
        "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
        "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
        "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
        "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
        "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
        "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
        "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
        "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
        "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've",
        "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
        "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's",
        "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
        "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're",
        "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
        "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
        "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
        "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've",
        "youll": "you'll", "youre": "you're", "youve": "you've",
    }
    NUMBER_MAP = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                  "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
    ARTICLES = ["a", "an", "the"]
    PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
    COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")
    PUNCTUATIONS = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
                    ",", "?", "!"]

    def word_tokenize(self, word):
        word = word.lower()
        word = word.replace(",", "").replace("?", "").replace("'s", " 's")
        return word.strip()

    def process_punctuation(self, in_text):
        out_text = in_text
        for p in self.PUNCTUATIONS:
            if (p + " " in in_text or " " + p in in_text) or (re.search(self.COMMA_STRIP, in_text) is not None):
                out_text = out_text.replace(p, "")
            else:
                out_text = out_text.replace(p, " ")
        out_text = self.PERIOD_STRIP.sub("", out_text, re.UNICODE)
        return out_text

    def process_digit_article(self, in_text):
        out_text = []
        temp_text = in_text.lower().split()
        for word in temp_text:
            word = self.NUMBER_MAP.setdefault(word, word)
            if word not in self.ARTICLES:
                out_text.append(word)
            else:
                pass
        for word_id, word in enumerate(out_text):
            if word in self.CONTRACTIONS:
                out_text[word_id] = self.CONTRACTIONS[word]
        out_text = " ".join(out_text)
        return out_text

    def __call__(self, item):
        item = self.word_tokenize(item)
        item = item.replace("\n", " ").replace("\t", " ").strip()
        item = self.process_punctuation(item)
        item = self.process_digit_article(item)
        return item


class TextVQAAccuracyEvaluator:
    def __init__(self):
        self.answer_processor = EvalAIAnswerProcessor()

    def _compute_answer_scores(self, raw_answers):
        answers = [self.answer_processor(a) for a in raw_answers]
        assert len(answers) == 10
        gt_answers = list(enumerate(answers))
        unique_answers = set(answers)
        unique_answer_scores = {}

        for unique_answer in unique_answers:
            accs = []
            for gt_answer in gt_answers:
                other_answers = [item for item in gt_answers if item != gt_answer]
                matching_answers = [item for item in other_answers if item[1] == unique_answer]
                acc = min(1, float(len(matching_answers)) / 3)
                accs.append(acc)
            unique_answer_scores[unique_answer] = sum(accs) / len(accs)

        return unique_answer_scores

    def eval_pred_list(self, pred_list):
        pred_scores = []
        for entry in pred_list:
            pred_answer = self.answer_processor(entry["pred_answer"])
            unique_answer_scores = self._compute_answer_scores(entry["gt_answers"])
            score = unique_answer_scores.get(pred_answer, 0.0)
            pred_scores.append(score)

        accuracy = sum(pred_scores) / len(pred_scores)
        return accuracy


def mmf_question_accuracy(pred_answer, gt_answers):
    """eval_pred_list on a one-entry list: that question's score."""
    return TextVQAAccuracyEvaluator().eval_pred_list([{"pred_answer": pred_answer, "gt_answers": gt_answers}])


# ---- 2. QwenLM/Qwen-VL eval_mm/vqa_eval.py (VQAEval.evaluate, one question) ----

class QwenVLVQAEval:
    def __init__(self):
        self.contractions = dict(EvalAIAnswerProcessor.CONTRACTIONS)  # vqa_eval.py's table: the same 2016 list
        self.manualMap = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                          "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
        self.articles = ["a", "an", "the"]
        self.periodStrip = re.compile(r"(?!<=\d)(\.)(?!\d)")
        self.commaStrip = re.compile(r"(\d)(,)(\d)")
        self.punct = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
                      ",", "?", "!"]

    def processPunctuation(self, inText):
        outText = inText
        for p in self.punct:
            if (p + " " in inText or " " + p in inText) or (re.search(self.commaStrip, inText) != None):  # noqa: E711
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
            else:
                pass
        for wordId, word in enumerate(outText):
            if word in self.contractions:
                outText[wordId] = self.contractions[word]
        outText = " ".join(outText)
        return outText

    def question_accuracy(self, answer, gt_answers):
        """One iteration of evaluate()'s loop (avgGTAcc, before setEvalQA's x100 and rounding).
        `answer` is what evaluate_vqa.py stored: the decoded output, stripped."""
        gts = {"answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                           for i, a in enumerate(gt_answers)]}
        resAns = answer
        resAns = resAns.replace("\n", " ")
        resAns = resAns.replace("\t", " ")
        resAns = resAns.strip()
        resAns = self.processPunctuation(resAns)
        resAns = self.processDigitArticle(resAns)
        gtAcc = []
        gtAnswers = [ans["answer"] for ans in gts["answers"]]
        if len(set(gtAnswers)) > 1:
            for ansDic in gts["answers"]:
                ansDic["answer"] = self.processPunctuation(ansDic["answer"])
        for gtAnsDatum in gts["answers"]:
            otherGTAns = [item for item in gts["answers"] if item != gtAnsDatum]
            matchingAns = [item for item in otherGTAns if item["answer"] == resAns]
            acc = min(1, float(len(matchingAns)) / 3)
            gtAcc.append(acc)
        avgGTAcc = float(sum(gtAcc)) / len(gtAcc)
        return avgGTAcc


def qwen_vl_question_accuracy(decoded_output, gt_answers):
    """evaluate_vqa.py: answer = tokenizer.decode(...).strip(), then VQAEval on that question."""
    return QwenVLVQAEval().question_accuracy(decoded_output.strip(), gt_answers)

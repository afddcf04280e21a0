"""Tables of the Multilingual page (pure: no Streamlit): per-language scores with each
language's family and script, the English reference, and the consistency figures."""
from __future__ import annotations

import pandas as pd

from dashboard.tables import language_scores
from m3eval.report.runs import Run

REFERENCE = "English (reference)"


def language_frame(runs: dict[str, Run], languages: dict[str, tuple[str, str, str]]) -> pd.DataFrame:
    """language_scores() plus name/family/script, the same model's English score and the
    difference from it; families ordered as declared, English first."""
    df = language_scores(runs)
    cols = ["model", "task", "lang", "name", "family", "script", "score", "en_score", "vs_en", "family_order"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    families = list(dict.fromkeys(f for _, f, _ in languages.values()))
    info = {code: languages.get(code, (code, "unlisted", "unlisted")) for code in df["lang"].unique()}
    df["name"] = [info[c][0] for c in df["lang"]]
    df["family"] = [REFERENCE if c == "en" else info[c][1] for c in df["lang"]]
    df["script"] = [info[c][2] for c in df["lang"]]
    df["family_order"] = [-1 if c == "en" else (families.index(info[c][1]) if info[c][1] in families else 999)
                          for c in df["lang"]]
    en = df[df["lang"] == "en"].set_index(["model", "task"])["score"]
    df["en_score"] = [en.get((m, t)) for m, t in zip(df["model"], df["task"])]
    df["vs_en"] = df["score"] - df["en_score"]
    return df[cols]


def consistency_frame(runs: dict[str, Run]) -> pd.DataFrame:
    """results.json `consistency`: one row per model and task pair."""
    rows = []
    for label, run in runs.items():
        for pair, c in sorted(run.results.consistency.items()):
            tasks = c.tasks or pair.split("|")
            rows.append({"model": label, "task": tasks[0], "paired with": tasks[-1],
                         "languages": " / ".join(map(str, c.langs)), "n": c.n,
                         "correctness agreement": c.correctness_agreement,
                         "answer agreement": c.answer_agreement})
    return pd.DataFrame(rows, columns=["model", "task", "paired with", "languages", "n", "correctness agreement",
                                       "answer agreement"])

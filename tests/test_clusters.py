"""Clustered intervals: samples that share an item are resampled together (issue 8, item 4)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from m3eval.metrics import get_metric
from m3eval.metrics.base import MetricInput
from m3eval.metrics.stats import (bootstrap_interval, corpus_bootstrap_ci, paired_bootstrap, paired_permutation,
                                  resample_counts)
from m3eval.scoring.task import score_task
from m3eval.types import Prediction

rng = np.random.default_rng(7)
ITEM_SCORES = (rng.random(200) < 0.65).astype(float)  # 200 images, right or wrong


def preds(instructions: int) -> list[Prediction]:
    """Each image under K instructions with the same outcome, ids as data/samples.py makes them."""
    out = []
    for i, s in enumerate(ITEM_SCORES):
        for k in range(instructions):
            sid = f"img{i}" if instructions == 1 else f"img{i}#i{k}"
            out.append(Prediction(id=sid, prediction="yes" if s else "no", prompt="p", references=["yes"],
                                  instruction=None if instructions == 1 else k))
    return out


def test_three_identical_instructions_do_not_narrow_the_interval():
    one, _ = score_task(preds(1), ["exact_match"], seed=0)
    three, _ = score_task(preds(3), ["exact_match"], seed=0)
    ci1, ci3 = one["metrics"]["exact_match"]["ci"], three["metrics"]["exact_match"]["ci"]
    assert three["metrics"]["exact_match"]["value"] == one["metrics"]["exact_match"]["value"]
    assert ci3[1] - ci3[0] >= (ci1[1] - ci1[0]) * 0.99
    assert ci3 == pytest.approx(ci1, abs=1e-9)  # same clusters, same statistic: the same interval
    assert three["clusters"] == {"key": "sample id without its #i<k> instruction suffix", "n": 200}
    assert one["clusters"] == {"key": "sample id (one sample per cluster)", "n": 200}
    # what the row-wise bootstrap (600 "independent" rows) gave: clearly narrower
    rows = np.repeat(ITEM_SCORES, 3)
    lo, hi, _ = bootstrap_interval(rows, 1000, 0)
    assert hi - lo < 0.7 * (ci1[1] - ci1[0])


def test_declared_cluster_key_groups_questions_of_one_video():
    # 50 videos x 4 questions; the outcome depends on the video: strong within-cluster correlation
    video_ok = rng.random(50) < 0.5
    ps = [Prediction(id=f"q{v}-{j}", prediction="a" if video_ok[v] else "b", prompt="p", references=["a"],
                     cluster=f"video{v}") for v in range(50) for j in range(4)]
    clustered, records = score_task(ps, ["exact_match"], seed=0, cluster_field="video_name")
    assert clustered["clusters"] == {"key": "doc.cluster (video_name)", "n": 50}
    assert records[0]["cluster"] == "video0"
    naive = score_task([Prediction(id=p.id, prediction=p.prediction, prompt="p", references=["a"]) for p in ps],
                       ["exact_match"], seed=0)[0]
    w = lambda e: e["metrics"]["exact_match"]["ci"][1] - e["metrics"]["exact_match"]["ci"][0]  # noqa: E731
    assert w(clustered) > 1.6 * w(naive)  # ~ sqrt(4) wider: 50 independent units, not 200


def test_bca_matches_scipy_and_percentile_above_the_threshold():
    x = rng.random(300)
    lo, hi, method = bootstrap_interval(x, 1000, 3)
    ref = sps.bootstrap((x,), np.mean, n_resamples=1000, method="BCa", random_state=np.random.default_rng(3))
    assert method == "bca" and (lo, hi) == pytest.approx(tuple(ref.confidence_interval), abs=1e-12)
    assert bootstrap_interval(rng.random(3000), 200, 0)[2] == "percentile"
    assert bootstrap_interval(x, 1000, 3) == (lo, hi, method)  # seeded: bit for bit
    assert bootstrap_interval([1.0, 1.0, 1.0], 100, 0) == (1.0, 1.0, "percentile")
    with pytest.raises(ValueError, match="3 keys for 2 samples"):
        bootstrap_interval([0.1, 0.2], clusters=["a", "b", "c"])


def test_corpus_resampling_draws_whole_clusters():
    keys = [f"img{i // 3}" for i in range(30)]
    for counts in resample_counts(30, 20, 0, keys):
        c = counts.reshape(10, 3)
        assert (c == c[:, :1]).all() and counts.sum() == 30  # the three samples of an image move together
    refs = [[f"the cat number {i} is on the mat"] for i in range(10)]
    items = [MetricInput(f"the cat number {i} sat on the mat" if i % 2 else "a dog", r)
             for i, r in enumerate(refs) for _ in range(3)]
    r = get_metric("bleu").compute(items)
    one = get_metric("bleu").compute([items[3 * i] for i in range(10)])
    ci3 = corpus_bootstrap_ci(r.rescore, 30, 200, 0, clusters=keys)
    ci1 = corpus_bootstrap_ci(one.rescore, 10, 200, 0)
    assert ci3 == pytest.approx(ci1, rel=1e-9)  # tripling every item changes no BLEU statistic ratio


def test_paired_tests_respect_clusters():
    a = np.repeat(rng.random(40), 5)
    b = a + np.repeat(rng.normal(0.05, 0.2, 40), 5)  # the change is per item, shared by its 5 rows
    keys = np.repeat(np.arange(40), 5).tolist()
    _, ci_rows, _ = paired_bootstrap(a, b, 1000, 0)
    _, ci_cl, _ = paired_bootstrap(a, b, 1000, 0, clusters=keys)
    assert ci_cl[1] - ci_cl[0] > 1.8 * (ci_rows[1] - ci_rows[0])
    _, p_rows = paired_permutation(a, b, 2000, 0)
    _, p_cl = paired_permutation(a, b, 2000, 0, clusters=keys)
    assert p_cl > p_rows
    # sign flips of cluster sums equal scipy's one-sample test on the cluster sums
    sums = np.bincount(keys, weights=b - a)
    ref = sps.permutation_test((sums,), lambda x, axis=-1: x.sum(axis=axis) / 200, permutation_type="samples",
                               vectorized=True, n_resamples=2000, random_state=np.random.default_rng(0))
    assert p_cl == pytest.approx(ref.pvalue)


def test_doc_cluster_field_or_template_reaches_the_predictions(tmp_path):
    import json

    from m3eval.data.samples import build_samples
    from m3eval.data.sources import load_dataset_rows
    from m3eval.tasks.schema import DatasetSpec, DocSpec, StepSpec, TaskSpec

    rows = [{"question_id": i, "video_name": f"video{i // 3}", "question": f"q{i}?", "answer": "a"} for i in range(6)]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for cluster, expect in (("video_name", "video1"), ("{{ video_name }}.mp4", "video1.mp4")):
        spec = TaskSpec(task="t", dataset=DatasetSpec(path="qa.jsonl"), metrics=[StepSpec(name="exact_match")],
                        doc=DocSpec(prompt="{{ question }}", references="answer", id="question_id", cluster=cluster))
        samples, _ = build_samples(spec, load_dataset_rows(spec.dataset, tmp_path, "t")[0])
        assert samples[4].cluster == expect and samples[0].cluster != samples[3].cluster


def test_external_predictions_are_resampled_by_the_tasks_clusters(tmp_path):
    """`score --task T --predictions F` carries the sample's fields into its predictions as a run
    does (Prediction.for_sample): a task that declares doc.cluster gets the same clustered
    interval either way. (It used to drop `cluster`, so external intervals came out narrower.)"""
    import json

    from m3eval.data.task_samples import load_task_data
    from m3eval.scoring.external import score_external
    from m3eval.scoring.run import score_one
    from m3eval.tasks.schema import DatasetSpec, DocSpec, StepSpec, TaskSpec

    video_ok = rng.random(40) < 0.5  # 40 videos x 4 questions, outcome set by the video
    rows = [{"qid": f"{v}-{j}", "video_name": f"video{v}", "question": "q?", "answer": "a"}
            for v in range(40) for j in range(4)]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = TaskSpec(task="t", source=str(tmp_path / "t.yaml"), dataset=DatasetSpec(path="qa.jsonl"),
                    metrics=[StepSpec(name="exact_match")],
                    doc=DocSpec(prompt="{{ question }}", references="answer", id="qid", cluster="video_name"))
    answers = {r["qid"]: "a" if video_ok[v] else "b" for v in range(40) for r in rows[4 * v:4 * v + 4]}
    (tmp_path / "preds.jsonl").write_text("".join(json.dumps({"id": i, "prediction": a}) + "\n"
                                                  for i, a in answers.items()))
    external, code = score_external(spec, tmp_path / "preds.jsonl", None, None, seed=0)
    assert code == 0
    entry = external.tasks["t"]
    assert entry.clusters is not None and entry.clusters.model_dump() == {"key": "doc.cluster (video_name)", "n": 40}
    from_run = score_one(spec, [Prediction.for_sample(s, answers[s.id]) for s in load_task_data(spec, None, "default").samples],
                         None, seed=0)
    assert entry.metrics["exact_match"] == from_run.metrics["exact_match"]


def test_unset_cluster_leaves_hash_and_resume_key_unchanged():
    from m3eval.tasks.schema import DatasetSpec, DocSpec, StepSpec, TaskSpec

    def spec(**doc):
        return TaskSpec(task="t", dataset=DatasetSpec(path="d.jsonl"), metrics=[StepSpec(name="exact_match")],
                        doc=DocSpec(prompt="p", references="a", **doc))
    plain, clustered = spec(), spec(cluster="video_name")
    assert "cluster" not in plain.stable_dump()["doc"]  # as before the field existed
    assert clustered.stable_dump()["doc"]["cluster"] == "video_name"
    assert plain.content_hash() != clustered.content_hash()
    assert plain.generation_key() != clustered.generation_key()  # its predictions carry the key

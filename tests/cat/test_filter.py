"""The quality filter drops planted bad samples, counts drops per reason, and accepts any embedder."""

from __future__ import annotations

import numpy as np
import pytest

from slc.cat.edits import SamplingPlan, sample_edits
from slc.cat.filter import FilterConfig, ObjectHistogramEmbedder, QualityFilter, judge_questions, merge_reports
from slc.cat.generators import ProceduralGenerator
from slc.cat.pipeline import reference_samples
from slc.cat.world import WORLD_VOCABULARY, world_tree

TREE = world_tree("triangle", "orange", "dotted", "antenna")
GEN = ProceduralGenerator(64)


def _setup():
    refs = [GEN.generate(r) for r in reference_samples("c9", TREE, 3, 0.3, 0, WORLD_VOCABULARY)]
    samples = sample_edits("c9", TREE, SamplingPlan(positives=6, easy=3, hard=6, seed=1), WORLD_VOCABULARY)
    return refs, samples


def test_embedder_rows_are_normalized_and_deterministic():
    emb = ObjectHistogramEmbedder()
    refs, samples = _setup()
    images = [GEN.generate(s) for s in samples]
    e = emb.embed_images(images)
    assert e.shape == (len(images), emb.dim) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(e, emb.embed_images(images))
    assert emb.embed_images([]).shape == (0, emb.dim)


def test_planted_wrong_colour_positive_is_dropped_and_reported():
    refs, samples = _setup()
    bad = samples[0].model_copy(update={"id": "planted", "tree": samples[0].tree.with_values({"colour": "blue"})})
    samples = [*samples, bad]
    images = [GEN.generate(s) for s in samples]  # the "generator" drew blue while the sample says positive
    decisions, report = QualityFilter(ObjectHistogramEmbedder()).filter(refs, samples, images)
    by_id = {d.sample_id: d for d in decisions}
    assert not by_id["planted"].kept and by_id["planted"].reason == "positive_too_dissimilar"
    assert all(by_id[s.id].kept for s in samples if s.id != "planted")  # correct samples all survive
    assert report.total == len(samples) and report.kept == len(samples) - 1
    assert report.dropped == {"positive_too_dissimilar": 1}
    assert report.by_difficulty["positive"] == {"kept": 6, "dropped": 1}
    assert "kept 15/16" in report.summary()


def test_hard_band_and_easy_limit():
    refs, samples = _setup()
    images = [GEN.generate(s) for s in samples]
    # A hard negative whose change did not render (the image shows the concept itself) is too similar.
    hard = next(s for s in samples if s.is_hard)
    d, _ = QualityFilter(ObjectHistogramEmbedder()).filter(refs, [hard], [refs[0]])
    assert d[0].reason == "hard_too_similar"
    strict = FilterConfig(hard_min=0.999, easy_max=0.0)
    _, report = QualityFilter(ObjectHistogramEmbedder(), strict).filter(refs, samples, images)
    assert report.dropped.get("hard_too_dissimilar") == 6 and report.dropped.get("easy_too_similar") == 3
    merged = merge_reports([report, report])
    assert merged.total == 2 * report.total and merged.dropped["easy_too_similar"] == 6
    mean_cfg = QualityFilter(ObjectHistogramEmbedder(), FilterConfig(aggregate="mean"))
    assert mean_cfg.reference_matrix(refs).shape[0] == 1


def test_judge_hook_gets_attribute_questions_and_can_reject():
    refs, samples = _setup()
    images = [GEN.generate(s) for s in samples]
    asked: list[str] = []

    def judge(image, question: str) -> bool:
        asked.append(question)
        return "orange" not in question or "colour" not in question  # rejects every colour=orange claim

    decisions, report = QualityFilter(ObjectHistogramEmbedder(), judge=judge).filter(refs, samples, images)
    assert any("whose colour is orange" in q for q in asked)
    assert all(not d.kept and d.reason == "judge_rejected" for d in decisions if d.difficulty == "positive")
    hard = next(s for s in samples if s.is_hard)
    assert len(judge_questions(hard)) == 1 + len(hard.edit.changed("identity"))


def test_filter_runs_with_tiny_clip_through_the_memory_embedder(tiny_clip_path):
    """Plumbing only: a random tiny CLIP's similarities are meaningless, so no threshold is asserted."""
    embedders = pytest.importorskip("slc.memory.embedders")
    emb = embedders.HFImageEmbedder(tiny_clip_path)
    refs, samples = _setup()
    decisions, report = QualityFilter(emb, FilterConfig(positive_min=-1, hard_min=-1, hard_max=1.01)).filter(
        refs, samples, [GEN.generate(s) for s in samples])
    assert report.kept == report.total == len(samples)
    assert all(-1.0 <= d.similarity <= 1.0001 for d in decisions)


def test_mismatched_lengths_and_empty_references_are_errors():
    refs, samples = _setup()
    qf = QualityFilter(ObjectHistogramEmbedder())
    with pytest.raises(ValueError, match="samples but"):
        qf.filter(refs, samples, [])
    with pytest.raises(ValueError, match="at least one reference"):
        qf.filter([], samples[:1], [refs[0]])

"""The graph with the REAL SmallVLM on a tiny random Idefics3 checkpoint (in-process, torch on CPU).

The large VLM is LangChain's fake chat model (TEST DOUBLE, conftest.py) so the loop-back can be forced:
this checks that the real detector accepts what the graph sends on both passes (round 0 without, round 1
with reference images and the verifier's feedback) and that its output lands in state as validated
claims. The random model's statuses mean nothing, so only their validity is asserted.
"""

from __future__ import annotations

import pytest

from slc.graphs.sessions import ask


@pytest.fixture(scope="module")
def small_vlm(tiny_vlm_path):
    from slc.agent.small_vlm import SmallVLM

    return SmallVLM.from_pretrained(tiny_vlm_path("idefics3"), device="cpu", dtype="float32", max_new_tokens=12)


def test_real_small_vlm_both_passes(d, make_run, photo, concept_factory, small_vlm):
    bo = concept_factory("bo", "dog", fur="golden")
    large = d.Large([d.verdicts({"bo": {"verdict": "uncertain", "feedback": "look at the left"}}),
                     d.verdicts({"bo": "agree"}), d.answer("Maybe.", ["bo"])])
    graph, ctx = make_run(d.Memory([bo], image_neighbours=["bo"]), small_vlm, large, reflection_rounds=1)
    res = ask(graph, "Is <bo> in this photo?", photo, context=ctx)
    assert res.large_vlm_calls == 3
    assert [(v.concept, v.round) for v in res.verdicts] == [("bo", 0), ("bo", 1)]
    (f,) = res.final
    assert f.present in ("true", "false", "unknown") and f.verified
    # both rounds' claims came from the real detector and were kept
    claims = [c for c in d.claim_ids(large.calls[0]).values()] + [c for c in d.claim_ids(large.calls[1]).values()]
    assert claims == ["bo", "bo"]


def test_graph_routes_each_concept_to_its_meta_adapter(tmp_path, tiny_vlm_path, real_memory, make_run, d):
    """With an adapter bank, personalize routes a concept to the adapter whose centroid is nearest to its
    mean reference embedding (SLC's meta personalization), and the detection records that adapter."""
    import numpy as np
    from PIL import Image

    from slc.agent.small_vlm import SmallVLM
    from slc.testing import build_random_adapter_bank

    real_memory.add("bo", [Image.new("RGB", (48, 40), (200, 40, 40))], description="a red toy", category="toy")
    emb = real_memory.concept_embedding("bo")
    # a0 points away from <bo>, a1 at it: routing must pick a1.
    bank = build_random_adapter_bank(tiny_vlm_path("idefics3"), tmp_path / "bank", np.stack([-emb, emb]))
    vlm = SmallVLM.from_pretrained(tiny_vlm_path("idefics3"), device="cpu", dtype="float32", bank=bank, max_new_tokens=8)
    large = d.Large([d.verdicts({"bo": "agree"}), d.answer("Yes.", ["bo"])])
    photo = Image.new("RGB", (64, 48), (200, 40, 40))
    graph, ctx = make_run(real_memory, vlm, large, reflection_rounds=0)
    res = ask(graph, "Is <bo> in this photo?", photo, context=ctx)
    assert [x.concept for x in res.final] == ["bo"]
    assert vlm.loaded_adapters == ["a1"]  # only the routed adapter was ever loaded and used

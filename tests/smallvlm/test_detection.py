"""End-to-end detection on real tiny checkpoints of two families, with routed and merged adapters.

The tiny models are random, so what is asserted is the machinery: schema, probabilities (checked against a
manual softmax over the model's own logits), batching invariance, adapter routing/switching/merging
changing the logits, repair/retry on replies forced malformed, and never a silent "absent".
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import LogitsProcessorList

from slc.agent import prompts
from slc.agent.detection import ConceptQuery, Detection
from slc.agent.errors import AdapterBankError, InvalidImageError, ModelNotFoundError
from slc.agent.chat_inputs import chat_inputs
from slc.agent.concept_prompts import build_prompt
from slc.agent.recognition import yes_no_token_ids
from slc.agent.small_vlm import SmallVLM

from .conftest import FAMILIES, ForceReplies

BO = ConceptQuery(name="bo", description="my brown dog", category="dog", attributes={"collar": "red"})
MOCHI = ConceptQuery(name="mochi", description="a white cat")


def manual_confidence(vlm: SmallVLM, image, query: ConceptQuery) -> tuple[float, float, float]:
    """P(yes)/(P(yes)+P(no)), P(no)/(...) and P(yes)+P(no), from a full unbatched forward pass and a softmax."""
    inputs = chat_inputs(vlm.processor, [image], build_prompt(query, "recognize", 0))
    with torch.no_grad():
        logits = vlm.model(**inputs).logits[0, -1].double()
    probs = torch.exp(logits - torch.logsumexp(logits, dim=0))
    yes, no = yes_no_token_ids(vlm.processor.tokenizer)
    p_yes, p_no = float(probs[yes].sum()), float(probs[no].sum())
    return p_yes / (p_yes + p_no), p_no / (p_yes + p_no), p_yes + p_no


@pytest.mark.parametrize("family", FAMILIES)
def test_detect_batch_schema_and_confidences(family, tiny_vlm_path, photos):
    vlm = SmallVLM.from_pretrained(tiny_vlm_path(family), device="cpu", max_new_tokens=16, min_yes_no_mass=0.0)
    assert vlm.dtype == torch.float32 and vlm.device.type == "cpu"
    result = vlm.detect_batch(photos[:3], [BO, MOCHI], batch_size=4)
    assert [[d.concept for d in row] for row in result] == [["bo", "mochi"]] * 3
    for i, row in enumerate(result):
        for d, query in zip(row, (BO, MOCHI)):
            assert Detection.model_validate(d.model_dump()) == d
            assert d.status in ("present", "absent") and d.status_source == "yes_no"
            assert d.prompt_version == prompts.SMALL_VLM_PROMPT_VERSION and d.adapter is None
            conf, complement, mass = manual_confidence(vlm, photos[i], query)
            assert 0.0 <= d.confidence <= 1.0 and 0.0 < d.yes_no_mass <= 1.0
            assert d.confidence == pytest.approx(conf, abs=1e-4)  # batched + left padded == single sample
            assert 1.0 - d.confidence == pytest.approx(complement, abs=1e-4)  # the complement is P(no | yes or no)
            assert d.yes_no_mass == pytest.approx(mass, rel=1e-3)
            assert d.status == ("present" if d.confidence >= 0.5 else "absent")
            if d.status == "absent":  # locate="auto": no generation for a probability-absent pair
                assert d.raw_output is None and d.location_absolute is None
    # batch size does not change the numbers
    one_by_one = vlm.scan(photos[:3], BO, batch_size=1)
    assert [d.confidence for d in one_by_one] == pytest.approx([row[0].confidence for row in result], abs=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_routed_adapters_per_concept_and_merged(family, tiny_vlm_path, bank_for, photos):
    bank = bank_for(family)
    vlm = SmallVLM.from_pretrained(tiny_vlm_path(family), device="cpu", bank=bank, max_new_tokens=8, min_yes_no_mass=0.0)
    base = vlm.detect(photos[0], [BO, MOCHI], locate="never")
    rng = np.random.default_rng(1)
    bo = BO.model_copy(update={"adapter": bank.route(np.eye(3, 8)[0] + 0.2 * rng.standard_normal(8))})
    mochi = MOCHI.model_copy(update={"adapter": bank.route(np.eye(3, 8)[1] + 0.2 * rng.standard_normal(8))})
    assert (bo.adapter, mochi.adapter) == ("a0", "a1")

    per = vlm.detect(photos[0], [bo, mochi], locate="never")
    assert [d.adapter for d in per] == ["a0", "a1"]
    for b, p in zip(base, per):
        assert abs(b.confidence - p.confidence) > 1e-4  # the adapter changes the answer logits
    peft_model = vlm.model
    assert vlm.loaded_adapters == ["a0", "a1"]
    # each concept under its own adapter: same numbers as asking for it alone, in any order
    alone = vlm.detect(photos[0], [mochi], locate="never")[0]
    swapped = vlm.detect(photos[0], [mochi, bo], locate="never")
    assert alone.confidence == pytest.approx(per[1].confidence, abs=1e-5)
    assert swapped[1].confidence == pytest.approx(per[0].confidence, abs=1e-5)
    # switching never reloads: same PeftModel, adapters loaded once; base still reachable and unchanged
    assert vlm.model is peft_model and vlm.loaded_adapters == ["a0", "a1"]
    again_base = vlm.detect(photos[0], [BO, MOCHI], locate="never")
    assert [d.confidence for d in again_base] == pytest.approx([d.confidence for d in base], abs=1e-6)

    # the logits themselves differ between base and adapter at the answer position
    inputs = chat_inputs(vlm.processor, [photos[0]], build_prompt(BO, "recognize", 0))
    with vlm.using(None):
        base_logits = vlm.handle().last_logits(inputs)
    with vlm.using("a0"):
        a0_logits = vlm.handle().last_logits(inputs)
    assert (base_logits - a0_logits).abs().max() > 1e-3

    vlm.config = vlm.config.model_copy(update={"combine": "merge"})
    merged = vlm.detect(photos[0], [bo, mochi], locate="never")
    assert {d.adapter for d in merged} == {"merge__a0__a1"}
    for p, m in zip(per, merged):
        assert abs(p.confidence - m.confidence) > 1e-5
    vlm.detect(photos[1], [mochi, bo], locate="never")  # same combination: served from the cache
    assert list(vlm._merged.values()) == ["merge__a0__a1"]
    # "cat" merge = exactly the mean of the two LoRA updates
    layer = next(m for n, m in vlm.model.named_modules() if n.endswith("q_proj") and hasattr(m, "get_delta_weight"))
    expected = 0.5 * (layer.get_delta_weight("a0") + layer.get_delta_weight("a1"))
    assert torch.allclose(layer.get_delta_weight("merge__a0__a1"), expected, atol=1e-6)

    with pytest.raises(AdapterBankError, match="does not have"):
        vlm.detect(photos[0], [BO.model_copy(update={"adapter": "nope"})])


def _forced(vlm: SmallVLM, replies: list[str]) -> ForceReplies:
    force = ForceReplies(vlm.processor.tokenizer, replies)
    vlm.config = vlm.config.model_copy(update={"generation_kwargs": {"logits_processor": LogitsProcessorList([force])}})
    return force


def test_malformed_output_is_retried_then_unknown_never_absent(tiny_vlm_path, photos):
    vlm = SmallVLM.from_pretrained(tiny_vlm_path("idefics3"), device="cpu", max_new_tokens=40, max_attempts=2)
    garbage = "bo is at the top left I think"
    force = _forced(vlm, [garbage])
    d = vlm.detect(photos[0], [BO], locate="always")[0]
    assert force.calls == 2  # first prompt + one stricter retry
    assert d.yes_no_mass < vlm.config.min_yes_no_mass  # the random model does not answer Yes/No meaningfully
    assert d.status == "unknown" and d.status_source is None
    assert d.attempts == 2 and d.raw_output.strip() == garbage and "no JSON" in d.parse_error

    # the same failure with a model that does answer Yes/No: the status stands, the failure is reported
    vlm.config = vlm.config.model_copy(update={"min_yes_no_mass": 0.0})
    _forced(vlm, [garbage])
    d = vlm.detect(photos[0], [BO], locate="always")[0]
    assert d.status in ("present", "absent") and d.status_source == "yes_no"
    assert d.location_absolute is None and d.parse_error and d.raw_output.strip() == garbage


def test_repairable_output_is_repaired_and_retry_can_succeed(tiny_vlm_path, photos):
    vlm = SmallVLM.from_pretrained(tiny_vlm_path("idefics3"), device="cpu", max_new_tokens=60)
    force = _forced(vlm, ["{'bo': {'present': True, 'location-absolute': 'top left', 'location-relative': 'near the sofa'"])
    d = vlm.detect(photos[0], [BO], locate="always")[0]
    assert force.calls == 1 and d.attempts == 1
    assert (d.status, d.status_source, d.json_present) == ("present", "json", True)
    assert (d.location_absolute, d.location_relative) == ("top left", "near the sofa") and d.parse_error is None

    force = _forced(vlm, ["I cannot tell", '{"bo": {"present": false, "location-absolute": ""}}'])
    d = vlm.detect(photos[0], [BO], locate="always")[0]
    assert force.calls == 2 and d.attempts == 2
    assert (d.status, d.status_source) == ("absent", "json") and d.location_absolute is None
    assert "false" in d.raw_output


def test_reference_images_feedback_scan_and_bad_images(tiny_vlm_path, photos, tmp_path, capsys):
    vlm = SmallVLM.from_pretrained(tiny_vlm_path("qwen2_5_vl"), device="cpu", max_new_tokens=8, min_yes_no_mass=0.0)
    refs = []
    for k, img in enumerate(photos[1:3]):
        refs.append(tmp_path / f"ref{k}.png")
        img.save(refs[-1])
    second = BO.model_copy(update={"reference_images": refs, "feedback": "The dog is on the left."})
    text = build_prompt(second, "recognize", 2)
    assert "The first 2 image(s) are reference photos of <bo>" in text and "The dog is on the left." in text
    first_pass = vlm.detect(photos[0], [BO], locate="never")[0]
    second_pass = vlm.detect(photos[0], [second], round=1, locate="never")[0]
    assert second_pass.round == 1 and abs(second_pass.confidence - first_pass.confidence) > 1e-5

    found = vlm.scan(photos, BO, batch_size=3, progress=True, locate="never")
    assert len(found) == 4 and all(d.concept == "bo" for d in found)
    assert "small VLM" in capsys.readouterr().err

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(InvalidImageError):
        vlm.detect(bad, [BO])
    with pytest.raises(InvalidImageError):
        vlm.detect(photos[0], [BO.model_copy(update={"reference_images": [bad]})])
    # a library scan does not abort on a broken file: that photo is "unknown" with the reason
    scanned = vlm.scan([photos[0], bad, photos[1]], BO, batch_size=2, locate="never")
    assert [d.status == "unknown" for d in scanned] == [False, True, False]
    assert "bad.jpg" in scanned[1].error and scanned[1].yes_no_mass is None
    assert scanned[0].confidence == pytest.approx(found[0].confidence, abs=1e-5)
    with pytest.raises(InvalidImageError):
        vlm.scan([photos[0], bad], BO, on_invalid_image="raise")
    with pytest.raises(ValueError, match="unique"):
        vlm.detect(photos[0], [BO, BO])


def test_from_settings(tiny_vlm_path, bank_for, monkeypatch, tmp_path):
    from slc.agent.settings import get_settings

    monkeypatch.setenv("SLC_SMALL__MODEL", str(tiny_vlm_path("idefics3")))
    monkeypatch.setenv("SLC_SMALL__ADAPTER_BANK", str(bank_for("idefics3").root))
    monkeypatch.setenv("SLC_SMALL__COMBINE", "merge")
    get_settings.cache_clear()
    vlm = SmallVLM.from_settings()
    assert vlm.bank.names == ["a0", "a1", "a2"] and vlm.config.combine == "merge" and vlm.dtype == torch.float32
    monkeypatch.setenv("SLC_SMALL__MODEL", str(tmp_path / "missing"))
    get_settings.cache_clear()
    with pytest.raises(ModelNotFoundError):
        SmallVLM.from_settings()
    # nothing configured: a clear error naming the fix, never a random model on the default path
    monkeypatch.delenv("SLC_SMALL__MODEL")
    monkeypatch.delenv("SLC_SMALL__ADAPTER_BANK")
    get_settings.cache_clear()
    with pytest.raises(ModelNotFoundError, match="SLC_SMALL__MODEL.*SLC_SMALL__ADAPTER_BANK.*slc demo"):
        SmallVLM.from_settings()
    assert not (get_settings().models_dir / "tiny-vlm-idefics3").exists()

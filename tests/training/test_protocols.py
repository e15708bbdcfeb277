"""Recognition protocols (yes_no / describe / likelihood): what training teaches is what the runtime asks.

Real tiny transformers models throughout. The claims tested: the describe-then-decide row labels the
description AND the decision (not the prompt); the likelihood loss pushes a negative's text down; the
auxiliary attribute head trains without leaving anything in the saved model; and SmallVLM, told the
protocol by the bank manifest, scores exactly like the benchmark's evaluator.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import math
from pathlib import Path

import pytest
import torch

from slc.training.trainer import TrainConfig, prepare_model, train

_HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("training_test_helpers_protocols", _HERE / "conftest.py")
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)


def _load(path: Path):
    from slc.agent.loading import load_vlm

    return load_vlm(path, device="cpu", dtype="float32")


def _pairs(rows, query):
    """The runtime's likelihood question for each row's image about ``query``."""
    from slc.agent.recognition import RecognitionPair

    return [RecognitionPair(image=e.image, image_key=i, query=query) for i, e in enumerate(rows)]


def _stream(world, protocol: str, n: int = 16):
    from slc.cat.edits import SamplingPlan
    from slc.training.data import TaskMix, stream_examples

    names = [c.name for c in world][:6]
    return list(itertools.islice(stream_examples(
        world, names, SamplingPlan(positives=2, easy=1, hard=2, seed=3), mix=TaskMix(recognition=1, describe=0, detection=0),
        contrast=True, protocol=protocol), n))  # fmt: skip


def test_describe_rows_label_description_and_decision_only(tiny_vlm_path, world):
    from slc.training.data import encode

    _, processor = _load(tiny_vlm_path("idefics3"))
    row = _stream(world, "describe", 1)[0]
    assert row.history and row.history[0][1] == row.description  # the first turn is the image's truth
    batch = encode(processor, [row])
    tok = processor.tokenizer
    labelled = tok.decode(batch["input_ids"][0][batch["labels"][0] != -100])
    assert labelled.replace(tok.eos_token, "|").split("|")[:2] == [f" {row.description}", row.answer]
    assert row.text.split("\n")[-1] not in labelled  # the question itself is never a target


def test_identity_text_is_the_runtime_form_of_the_training_target(world):
    from slc.agent.concept_prompts import identity_text
    from slc.training.data import concept_query, describe_identity

    c = next(iter(world))
    assert identity_text(concept_query(c, "full")) == describe_identity(c.tree)
    with pytest.raises(ValueError):
        identity_text(concept_query(c, "description"))  # no attributes: nothing to score


def test_sequence_loss_pushes_negatives_down():
    from slc.training.trainer import sequence_loss

    labels = torch.tensor([[-100, 3, 4]])
    confident = torch.full((1, 3, 6), -5.0)
    confident[0, 0, 3] = confident[0, 1, 4] = 5.0  # the answer "3 4" is very likely
    unsure = torch.zeros((1, 3, 6))
    pos, neg = torch.tensor([False]), torch.tensor([True])
    assert sequence_loss(confident, labels, pos) < sequence_loss(unsure, labels, pos)
    assert sequence_loss(confident, labels, neg) > sequence_loss(unsure, labels, neg)
    p = math.exp(-sequence_loss(unsure, labels, pos).item() * 2)  # two tokens, mean -> sum
    assert sequence_loss(unsure, labels, neg).item() == pytest.approx(-math.log(1 - p), rel=1e-4)


def test_likelihood_training_with_aux_head_lowers_loss_and_saves_plain_model(tiny_vlm_path, world, tmp_path):
    from slc.training.data import encode
    from slc.training.trainer import sequence_loss

    model, processor = _load(tiny_vlm_path("idefics3"))
    rows = _stream(world, "likelihood", 8)
    assert any(r.negative_target for r in rows) and all(r.text == rows[0].text for r in rows)
    neg = torch.tensor([r.negative_target for r in rows])

    def loss() -> float:
        with torch.no_grad():
            batch = encode(processor, rows)
            labels = batch.pop("labels")
            return sequence_loss(model(**batch).logits, labels, neg).item()

    before = loss()
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), mode="full", max_steps=10, batch_size=8, lr=3e-3, warmup=0.1,
                      progress=False, aux_attribute_weight=1.0)
    model.train()
    train(prepare_model(model, cfg), processor, helpers.cycle_stream(rows), cfg)
    model.eval()
    assert loss() < before * 0.8
    from slc.training.bank import save_base

    reloaded, _ = _load(save_base(model, processor, tmp_path / "saved"))  # the auxiliary head is not part of the model
    assert set(reloaded.state_dict()) == set(model.state_dict())


@pytest.mark.parametrize("protocol", ["likelihood", "describe"])
def test_smallvlm_uses_the_banks_protocol_and_scores_like_the_evaluator(protocol, tiny_vlm_path, world, tmp_path):
    """A bank records its protocol; SmallVLM built on it gives the evaluator's decisions and its
    likelihood confidence is exp(log P(identity text))."""
    from slc.agent.adapters import AdapterBank
    from slc.agent.recognition import LikelihoodRecognition
    from slc.agent.small_vlm import SmallVLM
    from slc.training.bank import write_bank
    from slc.training.data import concept_query, eval_examples
    from slc.training.metaconcepts import MetaConcept, MetaConcepts
    from slc.training.trainer import RecognitionEvaluator

    base = tiny_vlm_path("idefics3")
    model, processor = _load(base)
    names = [c.name for c in world][-2:]
    rows = eval_examples(world, names, positives=2, easy=1, hard=1)
    lora = TrainConfig(output_dir=str(tmp_path / "a"), mode="lora", max_steps=1, batch_size=2, progress=False, lora_r=2)
    adapter = train(prepare_model(copy.deepcopy(model), lora), processor, helpers.cycle_stream(rows), lora).model
    metas = MetaConcepts(k=1, embedder="test", metas=[MetaConcept(name="m0", centroid=[1.0, 0.0], concepts=names)])
    bank = write_bank(tmp_path / "bank", base_model=base, metas=metas, adapters={"m0": adapter}, recognition=protocol)
    assert AdapterBank.load(bank.root).manifest.recognition == protocol

    vlm = SmallVLM.from_pretrained(base, device="cpu", dtype="float32", bank=bank.root, locate="never")
    assert vlm.protocol.name == protocol
    preds = []
    for name in names:
        query = concept_query(world.get(name), "full").model_copy(update={"adapter": "m0"})
        mine = [e for e in rows if e.concept == name]
        dets = vlm.scan([e.image for e in mine], query)
        preds += [d.status == "present" for d in dets]
        if protocol == "likelihood":
            with vlm.using("m0"):
                lp = LikelihoodRecognition().logprobs(vlm.handle(), _pairs(mine, query))
            assert [d.confidence for d in dets] == pytest.approx([math.exp(v) for v in lp], abs=1e-5)
        else:
            assert all(d.evidence is not None for d in dets)  # the model's own description is kept as evidence
    with vlm.using("m0"):
        expected = RecognitionEvaluator(processor, [e for n in names for e in rows if e.concept == n],
                                        protocol=protocol).predict(vlm.model)
    assert preds == expected


def test_calibrated_threshold_decides_and_is_read_from_the_bank(tiny_vlm_path, world, tmp_path):
    """best_threshold picks the cut that separates the calibration rows; SmallVLM reads the bank's threshold
    and calls a concept present exactly when P(identity text) >= threshold."""
    from slc.agent.recognition import LikelihoodRecognition
    from slc.agent.small_vlm import SmallVLM
    from slc.training.bank import write_bank
    from slc.training.data import concept_query, eval_examples
    from slc.training.metaconcepts import MetaConcept, MetaConcepts
    from slc.training.trainer import best_threshold

    rows = eval_examples(world, [c.name for c in world][:1], positives=2, easy=1, hard=1)
    lps = [-0.5, -1.0, -6.0, -7.0]  # positives likely, negatives not
    t = best_threshold(lps, rows)
    assert math.exp(-6.0) < t < math.exp(-1.0)

    base = tiny_vlm_path("idefics3")
    model, processor = _load(base)
    metas = MetaConcepts(k=1, embedder="test", metas=[MetaConcept(name="m0", centroid=[1.0, 0.0], concepts=["x"])])
    lora = TrainConfig(output_dir=str(tmp_path / "a"), mode="lora", max_steps=1, batch_size=2, progress=False, lora_r=2)
    adapter = train(prepare_model(copy.deepcopy(model), lora), processor, helpers.cycle_stream(rows), lora).model
    bank = write_bank(tmp_path / "bank", base_model=base, metas=metas, adapters={"m0": adapter}, recognition="likelihood")
    query = concept_query(world.get(rows[0].concept), "full")
    probe = SmallVLM.from_pretrained(base, device="cpu", dtype="float32", bank=bank.root, locate="never")
    with probe.using("m0"):
        lp = LikelihoodRecognition().logprobs(probe.handle(), _pairs(rows, query))
    cut = math.exp(sorted(lp)[1] + 1e-3)  # just above the 2nd least likely row: the two likeliest are present
    bank.manifest.recognition_threshold = cut
    bank.save()
    vlm = SmallVLM.from_pretrained(base, device="cpu", dtype="float32", bank=bank.root, locate="never")
    assert vlm.protocol.threshold == pytest.approx(cut)
    dets = vlm.scan([e.image for e in rows], query.model_copy(update={"adapter": "m0"}))
    assert [d.status == "present" for d in dets] == [v >= math.log(cut) for v in lp]


def test_likelihood_mode_marks_concepts_without_identity_unknown(tiny_vlm_path, world):
    """A user concept registered with only a description cannot be scored by likelihood recognition: its
    detections come back "unknown" with the reason, while concepts with an identity in the same call are
    scored (the call does not fail and nothing is silently "absent")."""
    from slc.agent.detection import ConceptQuery
    from slc.agent.small_vlm import SmallVLM
    from slc.cat.render import render
    from slc.training.data import concept_query

    vlm = SmallVLM.from_pretrained(tiny_vlm_path("idefics3"), device="cpu", dtype="float32", locate="never",
                                   recognition="likelihood")
    concept = world.get([c.name for c in world][0])
    full = concept_query(concept, "full")
    bare = ConceptQuery(name="bo", description="my golden retriever")
    image = render(concept.tree, seed=0)
    scored, unknown = vlm.detect(image, [full, bare])
    assert scored.status in ("present", "absent") and scored.error is None
    assert unknown.status == "unknown" and "identity" in unknown.error and "<bo>" in unknown.error

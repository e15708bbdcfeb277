"""Training on real tiny transformers models: loss goes down, checkpoints resume, banks route and are
picked up by the SmallVLM runtime. No stand-ins: every step is a real forward/backward pass."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from slc.training.trainer import TrainConfig, prepare_model, train

_HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("training_test_helpers", _HERE / "conftest.py")
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)


def _load(path: Path):
    from slc.agent.loading import load_vlm

    model, processor = load_vlm(path, device="cpu", dtype="float32")
    model.train()
    return model, processor


def _batch_loss(model, processor, examples) -> float:
    from slc.training.data import encode

    model.eval()
    with torch.no_grad():
        loss = model(**encode(processor, examples)).loss.item()
    model.train()
    return loss


def test_full_training_steps_reduce_loss(tiny_vlm_path, few_examples, tmp_path):
    model, processor = _load(tiny_vlm_path("idefics3"))
    before = _batch_loss(model, processor, few_examples[:8])
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), mode="full", max_steps=12, batch_size=8, lr=3e-3,
                      warmup=0.1, progress=False, logging_steps=1)
    result = train(prepare_model(model, cfg), processor, helpers.cycle_stream(few_examples[:8]), cfg)
    after = _batch_loss(model, processor, few_examples[:8])
    assert result.steps == 12
    assert after < before * 0.8, (before, after)
    assert result.cpu_s > 0


def test_lora_checkpoint_resumes(tiny_vlm_path, few_examples, tmp_path):
    model, processor = _load(tiny_vlm_path("idefics3"))
    out = tmp_path / "lora"
    cfg = TrainConfig(output_dir=str(out), mode="lora", max_steps=4, save_steps=2, batch_size=4, lr=1e-3,
                      progress=False, lora_r=4)
    first = train(prepare_model(copy.deepcopy(model), cfg), processor, helpers.cycle_stream(few_examples), cfg)
    assert first.steps == 4 and (out / "checkpoint-4").is_dir()
    lora_a = {k: v.clone() for k, v in first.model.state_dict().items() if "lora_A" in k}

    more = cfg.model_copy(update={"max_steps": 6})
    resumed = train(prepare_model(copy.deepcopy(model), more), processor, helpers.cycle_stream(few_examples), more,
                    resume=True)
    assert resumed.steps == 6  # continued from step 4, not restarted
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    # the resumed run started from the checkpoint's weights, and training moved them further
    after = {k: v for k, v in resumed.model.state_dict().items() if "lora_A" in k}
    assert any(not torch.equal(lora_a[k], after[k]) for k in lora_a)
    assert (out / "adapter_config.json").is_file()


def test_metaconcepts_cluster_and_assign():
    from slc.training.metaconcepts import cluster_concepts

    rng = np.random.default_rng(0)
    a, b = np.eye(6)[0], np.eye(6)[3]
    emb = {f"a{i}": a + 0.05 * rng.standard_normal(6) for i in range(5)}
    emb |= {f"b{i}": b + 0.05 * rng.standard_normal(6) for i in range(4)}
    metas = cluster_concepts(emb, 2, embedder="test")
    groups = sorted(sorted(m.concepts) for m in metas.metas)
    assert groups == [[f"a{i}" for i in range(5)], [f"b{i}" for i in range(4)]]
    assert metas.assign(a) == next(m.name for m in metas.metas if "a0" in m.concepts)
    assert cluster_concepts(emb, 50).k == 9  # K clipped to the number of concepts
    with pytest.raises(ValueError):
        cluster_concepts({}, 2)


def test_trained_bank_saves_routes_and_is_used_by_smallvlm(tiny_vlm_path, world, tmp_path):
    """Train an adapter that says "Yes" to everything, another that says "No"; write them as a bank;
    SmallVLM must route a concept to the right one and its answer must follow that adapter."""
    from slc.agent.adapters import AdapterBank
    from slc.agent.small_vlm import SmallVLM
    from slc.cat.edits import SamplingPlan
    from slc.training.bank import write_bank
    from slc.training.data import TaskMix, concept_query, stream_examples
    from slc.training.metaconcepts import MetaConcept, MetaConcepts

    base_path = tiny_vlm_path("idefics3")
    model, processor = _load(base_path)
    names = [c.name for c in world][:2]
    pool = list(__import__("itertools").islice(
        stream_examples(world, names, SamplingPlan(positives=4, easy=2, hard=2, seed=1),
                        mix=TaskMix(recognition=1, describe=0, detection=0)), 16))
    adapters = {}
    for label, answer in (("yes", "Yes"), ("no", "No")):
        forced = [e.model_copy(update={"answer": answer}) for e in pool]
        cfg = TrainConfig(output_dir=str(tmp_path / label), mode="lora", max_steps=10, batch_size=8, lr=1e-2,
                          progress=False, lora_r=4)
        adapters[label] = train(prepare_model(copy.deepcopy(model), cfg), processor, helpers.cycle_stream(forced), cfg).model
    metas = MetaConcepts(k=2, embedder="test", metas=[
        MetaConcept(name="yes", centroid=[1.0, 0.0, 0.0], concepts=[names[0]]),
        MetaConcept(name="no", centroid=[0.0, 1.0, 0.0], concepts=[names[1]]),
    ])
    bank = write_bank(tmp_path / "bank", base_model=base_path, metas=metas, adapters=adapters,
                      metrics={"yes": {"steps": 10.0}})
    reopened = AdapterBank.load(bank.root)
    assert reopened.names == ["yes", "no"] and reopened.entry("yes").metrics == {"steps": 10.0}
    assert reopened.route([0.9, 0.1, 0.0]) == "yes" and reopened.route([0.1, 0.8, 0.2]) == "no"

    vlm = SmallVLM.from_pretrained(reopened.base_model, device="cpu", dtype="float32", bank=reopened, locate="never")
    image = pool[0].image
    query = concept_query(world.get(names[0]))
    dets = {a: vlm.detect(image, [query.model_copy(update={"adapter": a})])[0] for a in ("yes", "no")}
    base = vlm.detect(image, [query])[0]
    assert dets["yes"].adapter == "yes" and dets["no"].adapter == "no" and base.adapter is None
    assert dets["yes"].status == "present" and dets["no"].status == "absent"
    assert dets["yes"].confidence > 0.9 > 0.1 > dets["no"].confidence
    assert sorted(vlm.loaded_adapters) == ["no", "yes"]

    # The personalization tool, built the way the app builds it (settings name the bank), uses the
    # trained "yes" adapter for a concept routed to it.
    from slc.agent.settings import Settings
    from slc.tools.personalize import PersonalizeTool

    # no small.model: the bank names the base it was trained on
    settings = Settings(small={"adapter_bank": str(reopened.root), "device": "cpu", "dtype": "float32"})
    from_settings = SmallVLM.from_settings(settings, locate="never")
    assert from_settings.bank is not None and from_settings.bank.names == ["yes", "no"]
    photo_path = tmp_path / "photo.png"
    image.save(photo_path)
    tool = PersonalizeTool(vlm=from_settings, resolver=lambda n: concept_query(world.get(n)).model_copy(update={"adapter": "yes"}),
                           settings=Settings(privacy={"photo_roots": [tmp_path]}))  # the tool reads photos only there
    msg = tool.invoke({"type": "tool_call", "id": "1", "name": tool.name,
                       "args": {"image": str(photo_path), "concepts": [names[0]]}})
    (det,) = msg.artifact.detections
    assert det.adapter == "yes" and det.status == "present"


def test_bank_with_its_own_base_moves_as_one_folder(tmp_path, tiny_vlm_path):
    """A base saved inside the bank is recorded relative to it, so the moved bank still finds its base."""
    import shutil

    from slc.agent.adapters import AdapterBank
    from slc.testing import build_random_adapter_bank
    from slc.training.bank import write_bank
    from slc.training.metaconcepts import MetaConcept, MetaConcepts

    src = build_random_adapter_bank(tiny_vlm_path("idefics3"), tmp_path / "random", np.eye(1, 3))
    bank_dir = tmp_path / "bank"
    shutil.copytree(tiny_vlm_path("idefics3"), bank_dir / "base")
    metas = MetaConcepts(k=1, embedder="test", metas=[MetaConcept(name="m0", centroid=[1.0, 0.0, 0.0], concepts=["c"])])
    write_bank(bank_dir, base_model=bank_dir / "base", metas=metas, adapters={"m0": src.adapter_path("a0")})
    moved = tmp_path / "elsewhere" / "bank"
    shutil.move(str(bank_dir), str(moved))
    bank = AdapterBank.load(moved)
    assert bank.manifest.base_model == "base" and bank.base_model == str(moved / "base")

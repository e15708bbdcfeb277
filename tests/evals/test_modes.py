"""The "small" mode on the real SmallVLM (tiny random Idefics3, in-process) and `slc eval --import-concepts`.

No test double for the small VLM: the tiny model's answers mean nothing; the tests check how each item kind is
answered, what is counted, that the eval's concept import lands in the eval tenant once, and what each mode's
configuration (its fingerprint) depends on. The large VLM of the graph modes' description test is a LangChain
test double (CountingChatModel): only its identifying parameters are read there, it is never called.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from slc.evals.items import ChoiceItem, OpenVQAItem, RecognitionItem
from slc.evals.scoring import score_reply
from slc.evals.small_mode import SmallVLMPredictor, letter_token_ids


@pytest.fixture(scope="module")
def tiny_small(tiny_vlm_path):
    from slc.agent.small_vlm import SmallVLM

    return SmallVLM.from_pretrained(tiny_vlm_path("idefics3"), device="cpu", dtype="float32", max_new_tokens=4)


def test_letter_tokens(tiny_small) -> None:
    ids = letter_token_ids(tiny_small.processor, ["A", "B", "C"])
    assert set(ids) == {"A", "B", "C"} and all(ids.values())
    assert not set(ids["A"]) & set(ids["B"])
    with pytest.raises(ValueError, match="no distinct single token"):
        letter_token_ids(tiny_small.processor, ["A", "A"])


def test_small_mode_answers_each_item_kind(tiny_small, tmp_path: Path, yollava_paths, image_tree) -> None:
    rel = yollava_paths("test/bo/", 1)
    image_tree(tmp_path, rel)
    pred = SmallVLMPredictor(tiny_small, memory=None, root=tmp_path)
    rec = RecognitionItem(id="r", benchmark="t", concepts=["bo"], question="Is <bo> in this image?", images=rel,
                          expected=True)
    vqa = ChoiceItem(id="v", benchmark="t", concepts=["bo"], question="What is <bo>?", images=rel,
                     options={"A": "a dog", "B": "a cat"}, answer="A")
    text = ChoiceItem(id="q", benchmark="t", concepts=["bo"], question="Is <bo> a dog?",
                      options={"A": "yes", "B": "no", "C": "maybe"}, answer="A", system="<bo> is a dog.")
    open_ = OpenVQAItem(id="o", benchmark="t", concepts=["bo"], question="Who is <bo>?", images=rel, reference="a dog")
    got = {it.id: pred(it) for it in (rec, vqa, text, open_)}
    assert got["r"].reply in ("Yes", "No") and got["r"].meta["method"].startswith("yes/no")
    assert score_reply(rec, got["r"].reply)[0] is not None  # a forced choice always parses
    for k, item in (("v", vqa), ("q", text)):  # one letter of the item's options, never unparsed
        assert got[k].reply in item.options and score_reply(item, got[k].reply)[0] == got[k].reply
        assert set(got[k].meta["p"]) == set(item.options) and 0 < got[k].meta["letter_mass"] <= 1
    assert isinstance(got["o"].reply, str) and got["o"].meta["method"] == "greedy generation"
    # one local pass each (a scoring forward, or one generate), no LangChain model call
    assert {k: (p.usage.small_vlm_calls, p.usage.model_calls) for k, p in got.items()} == {
        "r": (1, 0), "v": (1, 0), "q": (1, 0), "o": (1, 0)}
    with pytest.raises(FileNotFoundError, match="not found"):
        pred(vqa.model_copy(update={"images": ["yollava-data/test/bo/999.png"]}))


def test_cli_imports_concepts_once_into_the_eval_tenant(tiny_vlm_path, tiny_clip_path, tmp_path: Path,
                                                        bench_dir: Path, yollava_paths, image_tree,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from slc.cli.app import app
    from slc.agent.settings import get_settings

    image_tree(tmp_path / "data", yollava_paths("test/shiba-gray/3.png", 1) + yollava_paths("train/shiba-gray/", 2))
    monkeypatch.setenv("SLC_SMALL__MODEL", str(tiny_vlm_path("idefics3")))
    monkeypatch.setenv("SLC_SMALL__DEVICE", "cpu")
    monkeypatch.setenv("SLC_SMALL__DTYPE", "float32")
    monkeypatch.setenv("SLC_IMAGE_ENCODER", str(tiny_clip_path))
    get_settings.cache_clear()
    args = ["eval", "yollava-vqa", "--root", str(tmp_path / "data"), "--annotations", str(bench_dir), "--mode",
            "small", "--out", str(tmp_path / "out"), "--no-progress", "--cache", "none"]
    runner = CliRunner()
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "concepts for yollava-vqa in tenant 'eval-yollava-vqa': 1 added" in res.output
    assert re.search(r"\| small \| 1 \| [01]\.000 \| [01]\.000 \|", res.output), res.output  # one item, both orders
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "out2")])
    assert res.exit_code == 0 and "0 added, 1 already there, 0 descriptions set" in res.output, res.output
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "out3"), "--no-import-concepts", "--tenant", "empty"])
    assert res.exit_code == 0 and "concepts for" not in res.output, res.output
    from slc.memory.store import ConceptMemory

    with ConceptMemory(get_settings(), tenant="eval-yollava-vqa") as mem:
        (c,) = mem.list()
        assert c.name == "shiba-gray" and len(c.images) == 2 and c.description.startswith("<shiba-gray>")
    with ConceptMemory(get_settings(), tenant="empty") as mem:
        assert mem.list() == []


def test_descriptions_change_with_what_changes_answers(tiny_small, tiny_clip_path, tmp_path: Path, counting_model,
                                                        image_tree, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each mode's fingerprint moves with its models, protocol, bank, memory and graph settings, and not with
    settings that only change speed (resume keys on it: see test_resume.py)."""
    from slc.agent.settings import get_settings
    from slc.agent.small_vlm import SmallVLM
    from slc.evals.fingerprint import bank_digest, config_changes, describe, fingerprint
    from slc.evals.modes import ModeContext, resolve_mode
    from slc.graphs.services import ServiceFactory
    from slc.testing import build_random_adapter_bank

    small = SmallVLMPredictor(tiny_small, memory=None)
    d0 = describe(small)
    assert d0["small"]["recognition"]["protocol"] == "yes_no" and d0["small"]["bank"] is None
    original = tiny_small.config
    try:
        tiny_small.config = original.model_copy(update={"batch_size": 3, "max_merged": 2})  # speed only
        assert fingerprint(describe(small)) == fingerprint(d0)
        tiny_small.config = original.model_copy(update={"recognition": "likelihood", "likelihood_threshold": 0.7})
        changes = config_changes(d0, describe(small))
        assert "small.recognition.protocol: 'yes_no' -> 'likelihood'" in changes
        assert "small.recognition.threshold: '<absent>' -> 0.7" in changes
    finally:
        tiny_small.config = original
    # an adapter bank is part of the small model: its manifest's hash
    bank = build_random_adapter_bank(tiny_small.model_id, tmp_path / "bank", np.eye(2, 4, dtype=np.float32))
    banked = SmallVLM(tiny_small.base_model, tiny_small.processor, bank=bank, model_id=tiny_small.model_id)
    digest = bank_digest(bank)
    assert describe(SmallVLMPredictor(banked))["small"]["bank"] == digest
    manifest = bank.root / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"recognition_threshold": 0.5', '"recognition_threshold": 0.6'))
    assert bank_digest(bank) != digest
    # the graph modes: reflection on/off and rounds, both models, the memory's content
    monkeypatch.setenv("SLC_IMAGE_ENCODER", str(tiny_clip_path))
    get_settings.cache_clear()
    settings = get_settings()

    def ctx(**update) -> ModeContext:
        return ModeContext(services=ServiceFactory(settings.model_copy(update=update), small_vlm=tiny_small,
                                                   large_vlm=counting_model))

    one = ctx()
    slc1, noreflect = resolve_mode("slc", one), resolve_mode("slc-noreflect", one)
    slc2 = resolve_mode("slc", ctx(reflection_rounds=2))
    assert config_changes(describe(slc1), describe(slc2)) == ["graph.reflection_rounds: 1 -> 2"]
    assert "graph.reflect: True -> False" in config_changes(describe(slc1), describe(noreflect))
    assert describe(slc1)["large"] == describe(resolve_mode("large", one))["large"] == {
        "class": "CountingChatModel", "params": {"answer": "A"},
        "endpoint": "the CountingChatModel provider's default endpoint"}
    before = describe(slc1)
    image_tree(tmp_path / "ref", ["bo/0.png"])
    one.services.memory().add("bo", [tmp_path / "ref" / "bo" / "0.png"], description="my dog")
    changes = config_changes(before, describe(slc1))
    assert "memory.concepts: 0 -> 1" in changes and any(c.startswith("memory.content:") for c in changes)
    one.services.close()

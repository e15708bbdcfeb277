"""The "small" mode on the real SmallVLM (tiny random Idefics3, in-process) and `slc eval --import-concepts`.

No test double: the tiny model's answers mean nothing; the tests check how each item kind is answered, what
is counted, and that the eval's concept import lands in the eval tenant once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from slc.evals.datasets import ChoiceItem, OpenVQAItem, RecognitionItem
from slc.evals.runner import score_reply
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
    assert "| small | original | 1 |" in res.output and "| small | shuffled | 1 |" in res.output
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

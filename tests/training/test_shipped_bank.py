"""The shipped identity bank (``slc.training.bank.SHIPPED_IDENTITY_BANK``) tells concepts from their look-alike
twins, through the runtime a user runs: SmallVLM with the bank, and the personalize tool over a real memory.

The photos are the identity benchmark's frozen test photos of split 0 (concepts never seen in training, their
registration photos rendered as a user would take them). The thresholds below are claims about the trained
bank with a margin under what the benchmark measured for it (docs/IDENTITY.md): positives accepted, twins that
differ by a mark or an accessory colour rejected, and twins as a whole better than chance. Twins that differ
only by shade, proportions or pattern scale it does not tell apart (the benchmark's table says so), so no test
pretends it does.
"""

from __future__ import annotations

import json

import pytest

from slc.training.bank import SHIPPED_IDENTITY_BANK

N_CONCEPTS = 24


@pytest.fixture(scope="module")
def vlm():
    from slc.agent.adapters import AdapterBank
    from slc.agent.small_vlm import SmallVLM

    bank = AdapterBank.load(SHIPPED_IDENTITY_BANK)
    return SmallVLM.from_pretrained(bank.base_model, bank=bank, locate="never")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """(concept, reference paths, its positive and twin test photos) for the first test concepts of split 0."""
    from slc.training.identity_data import frozen_items, make_split, registration_photos

    root = tmp_path_factory.mktemp("refs")
    split = make_split(0)
    out = []
    for i, c in enumerate(split.test[:N_CONCEPTS]):
        refs = []
        for k, im in enumerate(registration_photos(c, seed=10_000 + i)):
            refs.append(root / f"{c.name}-{k}.png")
            im.save(refs[-1])
        items = [it for it in frozen_items([c], "in-distribution", seed=20_261_130) if it.kind in ("positive", "twin")]
        out.append((c, refs, items))
    return out


def test_the_shipped_bank_decides_by_reference_photos(vlm):
    assert vlm.protocol.name == "reference" and vlm.protocol.uses_references
    assert sum(p.numel() for p in vlm.model.parameters()) < 5_000_000  # small enough to ship (and to run anywhere)


def test_twins_are_rejected_through_smallvlm(vlm, photos):
    from slc.agent.detection import ConceptQuery

    accepted, rejected = [], {}
    for c, refs, items in photos:
        rows = vlm.detect_batch([it.image for it in items], [ConceptQuery(name=c.name, reference_images=refs)])
        for it, (d,) in zip(items, rows):
            assert d.status in ("present", "absent"), d.error
            if it.kind == "positive":
                accepted.append(d.status == "present")
            else:
                rejected.setdefault(it.detail, []).append(d.status == "absent")
    rate = lambda xs: sum(xs) / len(xs)  # noqa: E731
    visible = rejected.get("mark", []) + rejected.get("accessory_colour", [])
    all_twins = [x for xs in rejected.values() for x in xs]
    assert len(accepted) >= N_CONCEPTS and len(visible) >= 10
    assert rate(accepted) >= 0.8
    assert rate(visible) >= 0.6, rejected
    assert (rate(accepted) + rate(all_twins)) / 2 >= 0.55  # weighted accuracy on twins, chance is 0.5


def test_the_personalize_tool_compares_with_the_stored_reference_photos(vlm, photos, tmp_path, monkeypatch, tiny_clip_path):
    """Registered through memory like any concept; the tool puts the stored photos into the query by itself."""
    from slc.agent.detection import ConceptQuery
    from slc.agent.settings import get_settings
    from slc.memory.embedders import HFImageEmbedder, SentenceTransformerTextEmbedder
    from slc.memory.store import ConceptMemory
    from slc.tools.personalize import PersonalizeTool

    monkeypatch.setenv("SLC_PRIVACY__PHOTO_ROOTS", json.dumps([str(tmp_path)]))
    get_settings.cache_clear()
    memory = ConceptMemory(get_settings(), image_embedder=HFImageEmbedder(tiny_clip_path, batch_size=4),
                           text_embedder=SentenceTransformerTextEmbedder())
    c, refs, items = photos[0]
    memory.add(c.name, refs, description="registered for the tool test")
    tool = PersonalizeTool.from_memory(memory, vlm)
    positive = next(it for it in items if it.kind == "positive")
    path = tmp_path / "query.png"
    positive.image.save(path)
    direct = vlm.detect(positive.image, [ConceptQuery(name=c.name, reference_images=refs)])[0]
    text = tool.invoke({"image": str(path), "concepts": [c.name]})
    # the same decision and confidence as SmallVLM given the photos by hand: the tool sent the stored photos
    assert text.startswith(f"<{c.name}>: {direct.status}") and f"{direct.confidence:.2f}" in text, text


def test_registration_reads_the_identity_off_the_photos(photos, monkeypatch, tiny_clip_path, tmp_path):
    """`slc concept add` and the remember_concept tool: the identity (category and attributes) comes from the
    small VLM reading the registration photos; nobody typed it, and the renderer's truth is only the answer key."""
    from typer.testing import CliRunner

    from slc.agent.settings import get_settings
    from slc.cli.app import app
    from slc.graphs.services import ServiceFactory
    from slc.tools.memory_tools import make_memory_tools

    monkeypatch.setenv("SLC_IMAGE_ENCODER", str(tiny_clip_path))
    monkeypatch.setenv("SLC_SMALL__ADAPTER_BANK", str(SHIPPED_IDENTITY_BANK))
    monkeypatch.setenv("SLC_PRIVACY__PHOTO_ROOTS", json.dumps([str(photos[0][1][0].parent)]))
    get_settings.cache_clear()
    runner = CliRunner()
    added = photos[:6]
    for c, refs, _ in added[:5]:
        r = runner.invoke(app, ["concept", "add", c.name, *map(str, refs)])
        assert r.exit_code == 0, r.output
    services = ServiceFactory()
    remember = next(t for t in make_memory_tools(services=services) if t.name == "remember_concept")
    c, refs, _ = added[5]
    assert "Remembered" in remember.invoke({"name": c.name, "image_paths": [str(p) for p in refs]})
    memory = services.memory()
    identities = {c.name: memory.get(c.name).identity for c, _, _ in added}
    assert all(i is not None and i.attributes for i in identities.values()), identities
    right = sum(identities[c.name].category == c.tree.root for c, _, _ in added)
    colours = sum(identities[c.name].attributes.get("colour") == c.tree.identity()["colour"] for c, _, _ in added)
    assert right >= 4 and colours >= 5, identities


def test_an_eval_can_fingerprint_the_shipped_bank(vlm):
    """`slc eval` fingerprints the small VLM (resume keys on it): the reference head is a weights digest, not an
    unserializable module (every eval with a reference bank failed on it)."""
    from slc.evals.fingerprint import describe_small_vlm

    described = describe_small_vlm(vlm)
    json.dumps(described)
    assert described["recognition"]["protocol"] == "reference" and len(described["recognition"]["head"]) == 12

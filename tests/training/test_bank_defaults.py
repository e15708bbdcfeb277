"""Defaults that fit together (issue 15, case 7): a bank trained by `slc train bank` with its defaults routes
concepts of a memory whose image encoder is another model, as installed, with no flag.

The bank's centroids live in the space of the embedder it records (``object-histogram`` by default, 87-d);
the memory recalls with its own encoder (here the tiny CLIP, 64-d). Routing embeds the concept's stored
reference photos with the bank's embedder. A bank whose embedder cannot be loaded here fails in one line
naming the setting and the flag that fix it. Real objects: the bank is trained by the real command (a few
seconds: 16 world concepts, 2 steps), memory is the real embedded Chroma, `slc scan` the real CLI.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner


def _slc(*args: str):
    from slc.cli.app import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def default_bank(tmp_path_factory):
    """`slc train bank` with its defaults, on budgets that take seconds."""
    from slc.agent.adapters import AdapterBank

    out = tmp_path_factory.mktemp("trained") / "bank"
    r = _slc("train", "bank", "--out", str(out), "--world", "16", "--k", "2", "--adapter-minutes", "0.05",
             "--steps", "2", "--device", "cpu")
    assert r.exit_code == 0, r.output
    return AdapterBank.load(out)


@pytest.fixture
def scan_env(default_bank, tiny_clip_path, tmp_path, monkeypatch):
    """The settings a user has after training: the bank configured, the memory on another image encoder;
    <c000> and <c001> registered (concept-world renders)."""
    from slc.agent.settings import get_settings
    from slc.cat.render import render
    from slc.cat.world import make_world
    from slc.memory.store import ConceptMemory

    monkeypatch.setenv("SLC_IMAGE_ENCODER", str(tiny_clip_path))
    monkeypatch.setenv("SLC_SMALL__ADAPTER_BANK", str(default_bank.root))
    monkeypatch.setenv("SLC_SMALL__DEVICE", "cpu")
    monkeypatch.setenv("SLC_SMALL__MAX_NEW_TOKENS", "8")
    get_settings.cache_clear()
    refs = {wc.name: [render(wc.tree, {"position": p}, size=64, seed=i) for i, p in enumerate(("center", "top left"))]
            for wc in make_world(2, seed=0)}
    memory = ConceptMemory(get_settings())
    for name, images in refs.items():
        memory.add(name, images, description=f"the concept {name}")
    photo = tmp_path / "photo.png"
    refs["c000"][1].save(photo)
    yield memory, refs, photo
    memory.close()
    get_settings.cache_clear()


def test_the_default_bank_records_object_histogram_and_routes_a_clip_memorys_concepts(default_bank, scan_env):
    from slc.memory.histogram import ObjectHistogramEmbedder
    from slc.memory.queries import concept_query

    memory, refs, _ = scan_env
    assert default_bank.manifest.embedder == "object-histogram" and default_bank.dim == ObjectHistogramEmbedder.dim
    assert memory.concept_embedding("c000").shape[0] != default_bank.dim  # the memory's own space does not fit
    for name, images in refs.items():
        mean = ObjectHistogramEmbedder().embed_images(images).mean(axis=0)
        routed = concept_query(memory.get(name), bank=default_bank,
                               embedding=lambda n=name: memory.concept_embedding(n, bank=default_bank))
        assert routed.adapter == default_bank.route(mean)  # the bank's own space, from the stored photos
        stored = memory.concept_embedding(name, bank=default_bank)
        assert stored.shape == mean.shape and float(stored @ mean / np.linalg.norm(mean)) > 0.98  # stored copies


def test_slc_scan_runs_with_the_default_bank_as_installed(scan_env):
    _, _, photo = scan_env
    r = _slc("scan", str(photo), "--concept", "c000", "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 1 and rows[0]["status"] in ("present", "absent", "unknown") and not rows[0].get("error")


def test_a_bank_whose_embedder_is_not_here_names_the_setting_and_the_flag(default_bank, scan_env, tmp_path, monkeypatch):
    from slc.agent.settings import get_settings

    _, _, photo = scan_env
    moved = tmp_path / "moved-bank"
    shutil.copytree(default_bank.root, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["embedder"] = str(tmp_path / "encoder-of-another-machine")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("SLC_SMALL__ADAPTER_BANK", str(moved))
    get_settings.cache_clear()
    r = _slc("scan", str(photo), "--concept", "c000")
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert "encoder-of-another-machine" in lines[0] and "SLC_IMAGE_ENCODER" in lines[0]
    assert "slc train bank --embedder" in lines[0]

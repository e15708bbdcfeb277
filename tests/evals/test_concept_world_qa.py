"""`slc data qa`: the concept-world personalized QA benchmark, read by the field's loaders and `slc eval` unchanged.

A small instance (4 held-out test concepts: two MC-LLaVA scenarios) is generated once through the CLI; every
file is loaded by the registered loaders, counted by kind against the manifest, checked for a balanced answer
key, against presence.json (the truth of which concepts are in each photo), for concepts the shipped small
VLM never trained on, for byte-identical regeneration, and run through `slc eval` with trivial baselines.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slc.cli.app import app
from slc.evals.datasets import load_benchmark
from slc.evals.items import CaptionItem, ChoiceItem, RecognitionItem

N = 4
BENCHMARKS = ("rap-recognition", "yollava-vqa", "yollava-text-qa", "mc-llava-choice", "mc-llava-captions")


def _generate(out: Path, *args: str) -> str:
    res = CliRunner().invoke(app, ["data", "qa", "--out", str(out), "--concepts", str(N), *args])
    assert res.exit_code == 0, res.output
    return res.output


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def qa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("qa") / "data"
    output = _generate(out)
    assert f"on {N} test concepts" in output and "rap-recognition" in output
    return out


@pytest.fixture(scope="module")
def manifest(qa: Path) -> dict:
    return json.loads((qa / "manifest.json").read_text())


@pytest.fixture(scope="module")
def presence(qa: Path) -> dict[str, dict[str, bool]]:
    return json.loads((qa / "presence.json").read_text())


@pytest.fixture(scope="module")
def loaded(qa: Path) -> dict:
    return {name: load_benchmark(name, root=qa) for name in BENCHMARKS}


def test_every_file_loads_with_its_items_by_kind(qa: Path, manifest: dict, loaded: dict) -> None:
    expected = {  # per concept: 4 positives + 4 negatives; 3 visual questions; 4 text questions; per scenario 5 + 4
        "rap-recognition": 8 * N, "yollava-vqa": 3 * N, "yollava-text-qa": 4 * N,
        "mc-llava-choice": 5 * N // 2, "mc-llava-captions": 4 * N // 2}
    for name, lb in loaded.items():
        rep = lb.report
        assert rep.items == expected[name], (name, rep.summary())
        assert rep.images_missing == [] and not rep.degenerate and rep.duplicates_removed == 0, rep.summary()
        assert rep.concepts == N, rep.summary()
    files = {f["benchmark"]: f for f in manifest["files"].values()}
    assert {b: f["items"] for b, f in files.items()} == expected
    assert manifest["items_total"] == sum(expected.values())
    assert files["rap-recognition"]["by_kind"] == {"positive": 4 * N, "one-attribute": N, "twin": N,
                                                   "other-category": N, "another-concept": N}
    assert files["rap-recognition"]["by_answer"] == {"yes": 4 * N, "no": 4 * N}
    assert files["yollava-text-qa"]["by_kind"] == {k: N for k in ("accessory", "colour", "pattern", "shape")}
    assert files["mc-llava-choice"]["by_kind"] == {k: N // 2 for k in ("both", "left-of", "neither", "only-a",
                                                                        "only-b")}
    vqa = files["yollava-vqa"]["by_kind"]
    assert vqa["position"] == N and vqa["left-right"] == N and sum(vqa.values()) == 3 * N
    # the loaders' own kinds and ids line up with the manifest's items
    rec = {it.id: it for it in loaded["rap-recognition"].items}
    kinds = {it["id"]: it["kind"] for it in manifest["items"] if it["file"] == "rap/recognition_test.json"}
    assert set(rec) == set(kinds) and all(rec[i].expected == (k == "positive") for i, k in kinds.items())
    ids = {it["id"] for it in manifest["items"]}
    for name in ("yollava-vqa", "yollava-text-qa", "mc-llava-choice", "mc-llava-captions"):
        assert {it.id for it in loaded[name].items} <= ids, name
    # questions name the concept as <cNNNN> once the loaders read the files' own placeholders (sks, <sks>)
    names = {c["name"] for c in manifest["concepts"]}
    for name in ("yollava-vqa", "yollava-text-qa", "mc-llava-choice"):
        for it in loaded[name].items:
            assert set(re.findall(r"<(c\d+)>", it.question)) == set(it.concepts) and set(it.concepts) <= names


def test_the_answer_key_is_balanced(loaded: dict, manifest: dict) -> None:
    """Every file deals its correct letters from a shuffled deck per option count: no letter leads by more than
    one, so always-A scores exactly chance in the file's own order; two-way truths are balanced too."""
    for name in ("yollava-vqa", "yollava-text-qa", "mc-llava-choice"):
        by_k: dict[int, Counter] = {}
        for it in loaded[name].items:
            assert isinstance(it, ChoiceItem)
            by_k.setdefault(len(it.options), Counter())[it.answer] += 1
        for k, letters in by_k.items():
            counts = [letters["ABCDEFGH"[i]] for i in range(k)]
            assert max(counts) - min(counts) <= 1, (name, k, letters)
    truths = Counter(it["truth"] for it in manifest["items"] if it["kind"] in ("left-right", "left-of"))
    assert truths["on the left"] == truths["on the right"] and truths["Yes"] == truths["No"], truths


def test_options_hold_the_renderers_truth(qa: Path, loaded: dict, manifest: dict) -> None:
    truth = {it["id"]: it for it in manifest["items"]}
    images = manifest["images"]
    for it in loaded["yollava-vqa"].items:
        m = truth[it.id]
        (concept,) = it.concepts
        objects = images[it.images[0]]["objects"]
        mine = next(o for o in objects if o["concept"] == concept)
        assert len(objects) == 2 and sum(o["concept"] is None for o in objects) == 1  # one look-alike beside it
        if m["kind"] == "position":
            assert it.options[it.answer] == mine["location"]
        elif m["kind"] in ("left-right", "above-below"):
            other = next(o for o in objects if o["concept"] is None)
            axis = 0 if m["kind"] == "left-right" else 1
            first = mine["center"][axis] < other["center"][axis]
            assert it.options[it.answer] == {("left-right", True): "on the left", ("left-right", False): "on the right",
                                             ("above-below", True): "above", ("above-below", False): "below"}[
                                                 (m["kind"], first)]
    concepts = {c["name"]: c for c in manifest["concepts"]}
    for it in loaded["yollava-text-qa"].items:
        m, c = truth[it.id], concepts[it.concepts[0]]
        if m["kind"] == "shape":
            assert it.options[it.answer] == c["category"]
        if m["kind"] == "colour":
            assert it.options[it.answer] == c["attributes"]["colour"]


def test_presence_agrees_with_the_items(qa: Path, loaded: dict, presence: dict[str, dict[str, bool]],
                                        manifest: dict) -> None:
    assert all((qa / rel).is_file() for rel in presence)
    names = [c["name"] for c in manifest["concepts"]]
    assert all(list(seen) == names for seen in presence.values())  # the truth of every registered concept
    for it in loaded["rap-recognition"].items:
        assert isinstance(it, RecognitionItem)
        assert presence[it.images[0]][it.concepts[0]] is it.expected
    for it in loaded["yollava-vqa"].items:  # <c> beside a look-alike of itself: no other concept there
        assert {c for c, here in presence[it.images[0]].items() if here} == {it.concepts[0]}
    for it in loaded["mc-llava-captions"].items:
        assert isinstance(it, CaptionItem)
        assert sorted(it.present) == sorted(c for c, here in presence[it.images[0]].items() if here)
    for it in loaded["mc-llava-choice"].items:
        here = {c for c, v in presence[it.images[0]].items() if v}
        text = it.options[it.answer]
        if text.startswith(("only", "both", "neither")):
            assert set(re.findall(r"<(c\d+)>", text)) == here
    # a negative "another concept's image" is that concept's positive photo
    for m in manifest["items"]:
        if m["kind"] == "another-concept":
            assert presence[m["image"]][m["detail"]] is True and presence[m["image"]][m["concepts"][0]] is False
    # the manifest's objects say the same as presence.json, photo by photo
    for rel, seen in presence.items():
        objects = manifest["images"][rel]["objects"]
        assert {c for c, v in seen.items() if v} == {o["concept"] for o in objects if o["concept"]}


def test_concepts_are_held_out_from_the_shipped_bank(manifest: dict) -> None:
    from slc.training.identity_benchmark import training_split
    from slc.training.identity_data import make_split

    trained = training_split([make_split(0), make_split(1)]).train
    names = {c["name"] for c in manifest["concepts"]}
    assert len(names) == N and not names & {c.name for c in trained}
    assert names <= {c.name for c in make_split(0).test}
    looks = {(c.tree.root, tuple(sorted(c.tree.identity().items()))) for c in trained}
    assert not {(c["category"], tuple(sorted(c["attributes"].items()))) for c in manifest["concepts"]} & looks
    assert manifest["split"] == "test" and manifest["seed"] == 0 and "--split test --seed 0" in manifest["command"]


def test_same_options_same_bytes_and_rewrite(qa: Path, tmp_path: Path) -> None:
    _generate(tmp_path / "again")
    assert _files(tmp_path / "again") == _files(qa)
    _generate(tmp_path / "seed1", "--seed", "1")
    other = _files(tmp_path / "seed1")
    assert other.keys() == _files(qa).keys() and other != _files(qa)
    # a folder it wrote is rewritten whole (nothing stale of a larger run); any other folder is refused
    res = CliRunner().invoke(app, ["data", "qa", "--out", str(tmp_path / "again"), "--concepts", "2"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "again" / "yollava-data" / "train").iterdir())) == 2
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x.txt").write_text("mine")
    res = CliRunner().invoke(app, ["data", "qa", "--out", str(tmp_path / "foreign"), "--concepts", "2"])
    assert res.exit_code != 0 and "not empty" in res.output and (tmp_path / "foreign" / "x.txt").is_file()


def test_slc_eval_runs_on_it(qa: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    for benchmark, mode, n in (("rap-recognition", "always-yes", 8 * N), ("mc-llava-choice", "always-A", 5 * N // 2)):
        res = runner.invoke(app, ["eval", benchmark, "--root", str(qa), "--mode", mode, "--out", str(tmp_path / "out"),
                                  "--no-progress", "--cache", "none"])
        assert res.exit_code == 0, res.output
        assert f"| {mode} | {n} |" in res.output, res.output
        assert (tmp_path / "out" / benchmark / "summary.json").is_file()
    assert "| always-yes | 32 | 0.500" in runner.invoke(app, [
        "eval", "rap-recognition", "--root", str(qa), "--mode", "always-yes", "--out", str(tmp_path / "out"),
        "--no-progress", "--cache", "none"]).output


def test_its_concepts_import_into_an_eval_memory(qa: Path) -> None:
    """`slc eval`'s concept import finds the registration photos in both layouts (3 photos per concept)."""
    from slc.agent.settings import get_settings
    from slc.evals.concepts import import_benchmark_concepts
    from slc.memory.embedders import SentenceTransformerTextEmbedder
    from slc.memory.histogram import ObjectHistogramEmbedder
    from slc.memory.store import ConceptMemory

    text = SentenceTransformerTextEmbedder()
    for benchmark in ("rap-recognition", "mc-llava-choice"):
        with ConceptMemory(get_settings(), tenant=f"eval-{benchmark}", image_embedder=ObjectHistogramEmbedder(),
                           text_embedder=text) as memory:
            got = import_benchmark_concepts(memory, benchmark, qa)
            assert len(got.added) == N and not got.failed and not got.warnings, got
            assert all(len(c.images) == 3 for c in memory.list())


def test_render_reports_where_companions_are() -> None:
    from slc.cat.render import render_with_info
    from slc.cat.world import make_world

    a, b = list(make_world(2, seed=3, instances=True))
    _, info = render_with_info(a.tree, {"position": "left", "scale": "small"}, size=64, seed=1, companions=[b.tree])
    (comp,) = info.companions
    x0, y0, x1, y1 = comp.bbox
    assert comp.index == 0 and x0 <= comp.center[0] <= x1 and y0 <= comp.center[1] <= y1
    mx0, my0, mx1, my1 = info.bbox
    assert x1 <= mx0 or mx1 <= x0 or y1 <= my0 or my1 <= y0  # beside the main object, never on it

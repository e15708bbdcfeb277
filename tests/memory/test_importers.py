"""Importers read the real annotation files in ../shared/benchmarks as they are, plus synthetic image trees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slc.agent.errors import SLCError
from slc.memory.importers import discover, import_dataset
from slc.memory.importers.slc_eval import parse_system_prompt

from .conftest import noise_image, write_image

BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"
needs_bench = pytest.mark.skipif(not BENCH.is_dir(), reason="shared benchmark annotation files not present")


@needs_bench
def test_yollava_tree_from_real_file_list(memory, tmp_path):
    lines = (BENCH / "yollava" / "file-list.txt").read_text().split()
    train = [l for l in lines if l.startswith("yollava-data/train/")]
    wanted = {"bo", "mam", "shiba-gray"}
    for i, rel in enumerate(l for l in train if l.split("/")[2] in wanted):
        write_image(tmp_path / rel, noise_image(i))
    write_image(tmp_path / "yollava-data/train/bo/negative_example/0.png", noise_image(999))
    plan = discover("yollava", tmp_path)
    assert sorted(c.name for c in plan.concepts) == sorted(wanted)
    bo = next(c for c in plan.concepts if c.name == "bo")
    assert bo.images and all("negative_example" not in str(p) for p in bo.images)
    assert len(bo.images) == sum(1 for l in train if l.split("/")[2] == "bo")
    report = import_dataset(memory, "yollava", tmp_path / "yollava-data", max_images=3)
    assert sorted(report.added) == sorted(wanted) and not report.failed
    assert len(memory.get("bo").images) == 3
    again = import_dataset(memory, "yollava", tmp_path)
    assert sorted(again.skipped) == sorted(wanted)


@needs_bench
def test_rap_database_as_is_reports_missing_images(memory, tmp_path):
    db = BENCH / "rap" / "database.json"
    plan = discover("rap", db)
    raw = json.loads(db.read_text())["concept_dict"]
    assert len(plan.concepts) == len(raw) and len(plan.missing_images) >= len(raw)
    bo = next(c for c in plan.concepts if c.name == "bo")
    assert bo.category == "dog" and bo.description.startswith("<bo> is")
    report = import_dataset(memory, "rap", db)  # no images on disk here: reported, not crashed on
    assert report.added == [] and len(report.skipped) == len(raw) and report.missing_images
    # with the images laid out under an images root, they register with description and category
    for key, entry in raw.items():
        write_image(tmp_path / entry["image"], noise_image(len(key)))
    (tmp_path / raw["<bo>"]["image"]).write_bytes(b"broken")  # one bad file fails only its concept
    report = import_dataset(memory, "rap", db, images_root=tmp_path)
    assert report.failed.keys() == {"bo"} and len(report.added) == len(raw) - 1
    duck = memory.get("brown-duck")
    assert duck.category == "plush toy" and "duck" in duck.description


def test_myvlm_layout(memory, tmp_path):
    root = tmp_path / "myvlm"
    for j in range(3):
        write_image(root / "cat_statue" / f"{j}.jpg", noise_image(j), "JPEG")
    (root / "cat_statue" / "captions.json").write_text(json.dumps(
        {"0.jpg": "<cat_statue> on a shelf.", "1.jpg": ["<cat_statue> in the sun."], "7.jpg": "gone"}))
    write_image(root / "mug" / "0.jpg", noise_image(10), "JPEG")  # no captions.json
    (root / "not-a-concept").mkdir()
    plan = discover("myvlm", root)
    assert [c.name for c in plan.concepts] == ["cat_statue", "mug"]
    assert plan.concepts[0].description == "<cat_statue> on a shelf." and plan.missing_images == [str(root / "cat_statue/7.jpg")]
    assert any("no captions.json" in w for w in plan.warnings)
    report = import_dataset(memory, "myvlm", root)
    assert sorted(report.added) == ["cat_statue", "mug"] and len(memory.get("cat_statue").images) == 3


def test_parse_system_prompt():
    got = parse_system_prompt("You are a helpful assistant. <Bafan> is a young man. <Xuezhixia> is a girl with <Bafan>'s hat.")
    assert got == {"Bafan": "<Bafan> is a young man.", "Xuezhixia": "<Xuezhixia> is a girl with <Bafan>'s hat."}
    assert parse_system_prompt("You are a helpful assistant.") == {}


@needs_bench
def test_slc_eval_descriptions_from_real_files(memory, tmp_path):
    plan = discover("slc_eval", BENCH / "slc")
    by = {c.name: c for c in plan.concepts}
    assert {"bo", "shiba-gray", "Bafan", "Xuezhixia"} <= set(by)
    assert by["bo"].description.startswith("<bo> is") and "Xuezhixia" not in by["Bafan"].description
    assert len(by["shiba-gray"].description) > 100  # the longest of its descriptions across files
    memory.add("bo", [noise_image(1)])
    write_image(tmp_path / "yollava-data/train/mam/0.png", noise_image(2))
    report = import_dataset(memory, "slc_eval", BENCH / "slc" / "yollava_eval__qa.json", on_exists="update", images_root=tmp_path)
    assert report.updated == ["bo"] and report.added == ["mam"]
    assert memory.get("bo").description == by["bo"].description
    assert "no reference image" in report.skipped["thao"]


def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(SLCError, match="Unknown import format"):
        discover("coco", tmp_path)
    with pytest.raises(SLCError, match="train"):
        discover("yollava", tmp_path)
    with pytest.raises(SLCError, match="not found"):
        discover("rap", tmp_path / "db.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(SLCError, match="not valid JSON"):
        discover("slc_eval", tmp_path / "x.json")


def test_imported_concepts_get_the_identity_read_off_their_photos(memory, tmp_path):
    """``identify`` (the small VLM's reading, passed in by the caller) gives each NEW concept its identity, as
    ``slc concept add`` does; it sees that concept's own photos, and existing concepts are left alone."""
    from slc.memory.importers import register
    from slc.memory.types import Identity

    for name, seed in (("bo", 1), ("mam", 2)):
        for k in range(2):
            write_image(tmp_path / "yollava-data" / "train" / name / f"{k}.png", noise_image(seed * 10 + k))
    seen = {}

    def identify(images, category):
        seen[Path(images[0]).parent.name] = len(images)
        return Identity(category="dog", attributes={"fur": Path(images[0]).parent.name})

    report = register(memory, discover("yollava", tmp_path), identify=identify)
    assert sorted(report.added) == ["bo", "mam"] and seen == {"bo": 2, "mam": 2}
    assert memory.get("bo").identity == Identity(category="dog", attributes={"fur": "bo"})
    again = register(memory, discover("yollava", tmp_path), identify=lambda *a: pytest.fail("called for an existing concept"))
    assert sorted(again.skipped) == ["bo", "mam"]
    memory.delete("mam")  # the Python entry point passes it on too
    assert import_dataset(memory, "yollava", tmp_path, identify=identify).added == ["mam"]
    assert memory.get("mam").identity.attributes == {"fur": "mam"}

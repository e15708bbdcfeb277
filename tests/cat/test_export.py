"""Exports: conversations load back with datasets, detection JSON is right, files are deterministic."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from slc.cat.edits import SamplingPlan
from slc.cat.export import TASKS, load_conversations
from slc.cat.pipeline import DatasetConfig, generate_dataset

CONFIG = DatasetConfig(n_concepts=4, plan=SamplingPlan(positives=3, easy=2, hard=3, seed=5), holdout=1)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cat-ds")
    generate_dataset(CONFIG, out)
    return out


def test_jsonl_loads_back_as_a_datasets_training_set(dataset):
    train = load_conversations(dataset / "train.jsonl")
    test = load_conversations(dataset / "test.jsonl")
    per_sample = len(TASKS)
    assert len(train) == 3 * 8 * per_sample and len(test) == 1 * 8 * per_sample
    assert set(train["split"]) == {"train"} and set(test["split"]) == {"test"}
    assert set(train["task"]) == set(TASKS)
    assert not set(train["concept"]) & set(test["concept"])  # held-out concepts are unseen in training
    row = train[0]
    user, assistant = row["messages"]
    assert user["role"] == "user" and assistant["role"] == "assistant"
    assert user["content"][0]["type"] == "image" and (dataset / user["content"][0]["path"]).is_file()
    assert row["images"] == [user["content"][0]["path"]]
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["counts"]["rows_train"] == len(train) and manifest["seed"] == 5
    assert manifest["prompt_versions"]["cat_export"] and manifest["filter_report"]["total"] == 32


def test_answers_match_the_samples(dataset):
    samples = {json.loads(line)["id"]: json.loads(line) for line in (dataset / "samples.jsonl").open()}
    rows = [json.loads(line) for line in (dataset / "train.jsonl").open()]
    for row in rows:
        s = samples[row["sample_id"]]
        answer = row["messages"][1]["content"][0]["text"]
        if row["task"] == "recognition":
            assert answer == ("Yes" if s["expected_present"] else "No")
        elif row["task"] == "detection":
            det = json.loads(answer)[f"<{s['concept']}>"]
            assert det["present"] == s["expected_present"]
            if s["expected_present"]:
                assert det["location-absolute"] == s["truth"]["location_absolute"]
            else:
                assert det["location-absolute"] is None
            assert s["tree"]["root"] in det["concept-info"]
        elif row["task"] == "attribute":
            leaves = [s["tree"]["root"]] + [a["value"] for a in s["tree"]["attributes"]]
            assert answer in leaves
        elif row["task"] == "description":
            assert (f"<{s['concept']}>" in answer) == s["expected_present"]


def test_same_seed_gives_identical_files_other_seed_differs(dataset, tmp_path):
    generate_dataset(CONFIG, tmp_path / "again")
    assert _digest(dataset) == _digest(tmp_path / "again")
    other = CONFIG.model_copy(update={"plan": CONFIG.plan.model_copy(update={"seed": 6})})
    generate_dataset(other, tmp_path / "other")
    assert _digest(dataset) != _digest(tmp_path / "other")


def test_no_filter_and_no_holdout(tmp_path):
    cfg = DatasetConfig(n_concepts=2, plan=SamplingPlan(positives=1, easy=1, hard=1), filter=False,
                        tasks=["recognition"])
    res = generate_dataset(cfg, tmp_path)
    assert res.manifest["filter_report"] is None and not (tmp_path / "test.jsonl").exists()
    assert len(load_conversations(tmp_path / "train.jsonl")) == 6
    with pytest.raises(ValueError, match="holdout"):
        generate_dataset(cfg.model_copy(update={"holdout": 2}), tmp_path)


def test_iter_rendered_matches_the_exported_images(dataset):
    from PIL import Image

    from slc.cat.pipeline import iter_rendered
    from slc.cat.world import make_world

    world = make_world(CONFIG.n_concepts, seed=CONFIG.plan.seed)
    items = list(iter_rendered(world, CONFIG.plan, CONFIG.size, names={"c000"}))
    assert len(items) == 8 and all(c.name == "c000" for c, *_ in items)
    concept, sample, img, info = items[0]
    # the filter keeps every procedural sample with default thresholds, so the file exists
    on_disk = Image.open(dataset / "images" / "c000" / f"{sample.id}.png").convert("RGB")
    assert on_disk.tobytes() == img.tobytes()

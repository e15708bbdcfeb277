"""Formats the shared annotation folder does not hold, read as their projects publish them.

The files here are synthetic but copy the structure of the public repositories exactly:
- MC-LLaVA (github.com/arctanxarc/MC-LLaVA, README "File Structure" and llava/dataset.py):
  ``<case>/concept/test/<concept>/{choice,vqa}.json`` = {image: {"Human", "AI"}},
  ``<case>/multi/<A_B>/{choice,vqa}.json`` = {image: [{"Human", "AI"}, ...]},
  ``.../qa.json`` = [{"question", "answer"}] (text-only choice), ``multi/<A_B>/position.json`` =
  {image: {concept: box or null}}; the caption task covers the single-concept test images too.
- MyVLM (github.com/snap-research/MyVLM, README "Data Setup"): ``<concept>/captions.json`` OR
  ``<concept>/captions_augmented.json`` = {image file: [captions]}.
- RAP (github.com/Hoar012/RAP-MLLM, eval/recognition_test.json before commit f477eeb): image paths prefixed
  ``benchmark_data/`` (``benchmark_data/yollava-data/test/bo/4.png``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slc.evals.datasets import load_benchmark
from slc.evals.items import CaptionItem, ChoiceItem, OpenVQAItem
from slc.evals.predictors import TrivialPredictor
from slc.evals.runner import NothingToScoreError, RunConfig, run_benchmark

CHOICE_SINGLE = "What type of clothing is <Bafan> wearing?  A. Casual wear; B. School uniform; C. Sports attire;"
CHOICE_MULTI = "What is the background setting behind <Bafan> and <Xuezhixia>? A.school hallway. B.park. C.office"


def _mcllava_tree(root: Path, image_tree) -> Path:
    """One two-concept scenario in MC-LLaVA's layout, image keys written as absolute paths of another machine."""
    case = root / "two_concept"
    rels = ["two_concept/concept/test/Bafan/0.png", "two_concept/concept/test/Bafan/1.png",
            "two_concept/concept/test/Xuezhixia/0.png", "two_concept/multi/Bafan_Xuezhixia/0.png",
            "two_concept/multi/Bafan_Xuezhixia/1.png"]
    image_tree(root, rels)
    foreign = "/workspace/data/MulBench/"
    bafan, xue, multi = (case / "concept/test/Bafan", case / "concept/test/Xuezhixia",
                         case / "multi/Bafan_Xuezhixia")
    (bafan / "choice.json").write_text(json.dumps({
        foreign + rels[0]: {"Human": CHOICE_SINGLE, "AI": "B"},
        foreign + rels[1]: {"Human": "What is <Bafan> holding? A. A sword; B. A book", "AI": "A"}}))
    (xue / "choice.json").write_text(json.dumps({"0.png": {"Human": "Hair of <Xuezhixia>? A. Black B. Red",
                                                           "AI": "A"}}))
    (multi / "choice.json").write_text(json.dumps({foreign + rels[3]: [
        {"Human": "Who stands left? A. <Bafan> B. <Xuezhixia>", "AI": "A"},
        {"Human": "What is <Xuezhixia> wearing? A. a hat B. a scarf", "AI": "B"},
        {"Human": CHOICE_MULTI, "AI": "A"}]}))
    (bafan / "qa.json").write_text(json.dumps([{"question": "What is the hair color of <Bafan>? A.Black.  B.Brown",
                                                "answer": "A"}]))
    (xue / "qa.json").write_text(json.dumps([]))
    (multi / "qa.json").write_text(json.dumps([
        {"question": "Are both <Bafan> and <Xuezhixia> humans or animals? A. Humans. B. Animals", "answer": "A"}]))
    (bafan / "vqa.json").write_text(json.dumps({foreign + rels[0]: {"Human": "<image>\nWhat is <Bafan> wearing?",
                                                                    "AI": "A school uniform."}}))
    (multi / "vqa.json").write_text(json.dumps({foreign + rels[3]: [
        {"Human": "<image>\nWhere are <Bafan> and <Xuezhixia>?", "AI": "In a school hallway."}]}))
    (multi / "position.json").write_text(json.dumps({foreign + rels[3]: {"Bafan": [1, 2, 3, 4], "Xuezhixia": None},
                                                     foreign + rels[4]: {"Bafan": [1, 2, 3, 4],
                                                                         "Xuezhixia": [5, 6, 7, 8]}}))
    return root


def test_mcllava_choice_json_loads(tmp_path: Path, image_tree) -> None:
    root = _mcllava_tree(tmp_path, image_tree)
    lb = load_benchmark("mc-llava-choice", root=root)
    assert all(isinstance(it, ChoiceItem) for it in lb.items) and len(lb.items) == 6
    first = next(it for it in lb.items if it.question.startswith("What type of clothing"))
    assert first.options == {"A": "Casual wear", "B": "School uniform", "C": "Sports attire"}
    assert first.answer == "B" and first.concepts == ["Bafan"]
    assert first.images == ["two_concept/concept/test/Bafan/0.png"]  # the foreign prefix resolved under root
    assert lb.report.images_missing == [] and len(lb.available()) == 6
    assert {it.group for it in lb.items} == {"single", "multi"}
    multi = [it for it in lb.items if it.group == "multi"]
    assert [it.concepts for it in multi] == [["Bafan", "Xuezhixia"], ["Xuezhixia"], ["Bafan", "Xuezhixia"]]


def test_mcllava_text_qa_json_loads(tmp_path: Path, image_tree) -> None:
    root = _mcllava_tree(tmp_path, image_tree)
    lb = load_benchmark("mc-llava-text-qa", root=root)
    assert [(it.question, it.options, it.answer, it.images, it.group) for it in lb.items] == [
        ("What is the hair color of <Bafan>?", {"A": "Black", "B": "Brown"}, "A", [], "single"),
        ("Are both <Bafan> and <Xuezhixia> humans or animals?", {"A": "Humans", "B": "Animals"}, "A", [], "multi")]


def test_mcllava_image_tag_is_not_a_concept(tmp_path: Path, image_tree) -> None:
    root = _mcllava_tree(tmp_path, image_tree)
    lb = load_benchmark("mc-llava-vqa", root=root)
    assert all(isinstance(it, OpenVQAItem) for it in lb.items)
    assert [it.concepts for it in lb.items] == [["Bafan"], ["Bafan", "Xuezhixia"]]
    assert lb.items[0].question == "What is <Bafan> wearing?"
    assert lb.report.concepts == 2


def test_mcllava_captions_include_single_concept_images(tmp_path: Path, image_tree) -> None:
    root = _mcllava_tree(tmp_path, image_tree)
    lb = load_benchmark("mc-llava-captions", root=root)
    assert all(isinstance(it, CaptionItem) for it in lb.items)
    by_image = {it.images[0]: it for it in lb.items}
    assert len(by_image) == 5  # 3 single-concept test images + 2 multi-concept images
    single = by_image["two_concept/concept/test/Bafan/0.png"]
    assert single.present == ["Bafan"] and single.group == "single"
    assert single.concepts == ["Bafan", "Xuezhixia"]  # the caption prompt names the scenario's concepts
    assert by_image["two_concept/multi/Bafan_Xuezhixia/0.png"].present == ["Bafan"]


def test_myvlm_folder_with_only_captions_augmented(tmp_path: Path, image_tree) -> None:
    from slc.memory.importers import discover

    image_tree(tmp_path, ["dog/0.jpg", "dog/1.jpg", "mug/0.jpg"])
    (tmp_path / "dog" / "captions_augmented.json").write_text(json.dumps(
        {"0.jpg": ["dog on a sofa", "dog sleeping"], "1.jpg": ["dog outside"]}))
    (tmp_path / "mug" / "captions.json").write_text(json.dumps({"0.jpg": ["mug on a desk"]}))
    lb = load_benchmark("myvlm-captions", root=tmp_path)
    pos = sorted(it.id for it in lb.items if it.present)
    assert pos == ["dog/0.jpg|dog", "dog/1.jpg|dog", "mug/0.jpg|mug"]
    dog0 = next(it for it in lb.items if it.id == "dog/0.jpg|dog")
    assert dog0.references == ["dog on a sofa", "dog sleeping"]
    plan = discover("myvlm", tmp_path)  # the concept importer reads the same file
    assert {c.name: c.description for c in plan.concepts} == {"dog": "dog on a sofa", "mug": "mug on a desk"}
    assert plan.warnings == []


def _old_rap_file(path: Path) -> Path:
    rows = []
    for concept in ("bo", "mam"):
        for i in range(2):
            img = f"benchmark_data/yollava-data/test/{concept}/{i}.png"
            for asked in ("bo", "mam"):
                rows.append({"image": img, "question": f"<image>\nIs <{asked}> in this image?", "concept": asked,
                             "type": "positive" if asked == concept else "negative",
                             "correct_answer": asked == concept})
    path.write_text(json.dumps(rows))
    return path


def test_rap_older_recognition_file_with_benchmark_data_prefix(tmp_path: Path, image_tree) -> None:
    root = image_tree(tmp_path / "data", [f"yollava-data/test/{c}/{i}.png" for c in ("bo", "mam") for i in range(2)])
    ann = _old_rap_file(tmp_path / "recognition_test.json")
    lb = load_benchmark("rap-recognition", root=root, annotations=ann)
    assert lb.report.images_missing == [] and len(lb.available()) == 8
    result = run_benchmark(lb, [TrivialPredictor("always-yes")],
                           RunConfig(out_dir=tmp_path / "out", shuffled=False, progress=False))
    assert result.ran == {"always-yes": 8}


def test_a_run_that_scores_nothing_fails_naming_the_path_problem(tmp_path: Path, image_tree) -> None:
    root = image_tree(tmp_path / "elsewhere", ["unrelated/0.png"])
    ann = _old_rap_file(tmp_path / "recognition_test.json")
    lb = load_benchmark("rap-recognition", root=root, annotations=ann)
    with pytest.raises(NothingToScoreError) as err:
        run_benchmark(lb, [TrivialPredictor("always-yes")],
                      RunConfig(out_dir=tmp_path / "out", shuffled=False, progress=False))
    msg = str(err.value)
    assert "none of the 4 images" in msg and str(root) in msg
    assert "benchmark_data/yollava-data/test/bo/0.png" in msg  # the path as the file writes it
    assert "unrelated" in msg  # what the root holds instead


def test_cli_fails_when_no_image_is_found(tmp_path: Path, image_tree) -> None:
    from slc.cli.app import app

    root = image_tree(tmp_path / "elsewhere", ["unrelated/0.png"])
    ann = _old_rap_file(tmp_path / "recognition_test.json")
    res = CliRunner().invoke(app, ["eval", "rap-recognition", "--root", str(root), "--annotations", str(ann),
                                   "--mode", "always-yes", "--out", str(tmp_path / "out"), "--no-progress"])
    assert res.exit_code == 2, res.output
    assert "none of the 4 images" in res.output and "| always-yes" not in res.output


def test_repeats_reported_precisely(bench_dir: Path) -> None:
    lb = load_benchmark("mc-vqa-multi", annotations=bench_dir)
    assert lb.report.duplicates_removed == 25
    assert lb.report.repeats == {"identical": 19, "differ only in punctuation or spacing": 6}
    note = next(n for n in lb.report.notes if "repeat" in n)
    assert "19 identical" in note and "6 differ only in punctuation or spacing" in note
    assert "Anya_Loid_Yor" in note  # an example, by the file's own keys


def test_degenerate_items_flagged(bench_dir: Path) -> None:
    lb = load_benchmark("yollava-text-qa", annotations=bench_dir)
    assert lb.report.items == 400  # kept (the published count), but flagged
    assert lb.report.degenerate == {"tokyo-keyboard/5": "options A and B are the same text ('No')",
                                    "tokyo-keyboard/6": "options A and B are the same text ('No')"}
    assert any("2 degenerate items" in n and "tokyo-keyboard/5" in n for n in lb.report.notes)

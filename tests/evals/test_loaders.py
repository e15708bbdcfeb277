"""Loaders on the real published annotation files, and image lookup on a synthetic tree with the real paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slc.evals.annotations import split_options
from slc.evals.datasets import (
    benchmark_for_file,
    load_benchmark,
    load_rap_recognition,
    load_sharegpt_eval,
    load_yollava_text_qa,
    load_yollava_visual_qa,
)
from slc.evals.items import BenchmarkFormatError, CaptionItem, ChoiceItem, OpenVQAItem, RecognitionItem
from slc.evals.mcllava import load_mcllava_native
from slc.evals.myvlm import load_myvlm_captions


def test_yollava_visual_qa_counts(bench_dir: Path) -> None:
    lb = load_yollava_visual_qa(bench_dir / "yollava" / "yollava-visual-qa.json")
    assert lb.report.items == 170 and lb.report.concepts == 40
    assert lb.report.by_answer == {"A": 99, "B": 71}  # always-A = 99/170 = 0.582
    item = next(it for it in lb.items if it.id == "shiba-gray/yollava-data/test/shiba-gray/3.png")
    assert isinstance(item, ChoiceItem)
    assert item.images == ["yollava-data/test/shiba-gray/3.png"]  # leading ./ removed, as in file-list.txt
    assert item.question == "What animal does <shiba-gray> resemble?"
    assert item.options == {"A": "Cat", "B": "Dog"} and item.answer == "B"


def test_rap_copy_of_visual_qa_differs_by_one_label(bench_dir: Path) -> None:
    yo = {it.id: it for it in load_yollava_visual_qa(bench_dir / "yollava" / "yollava-visual-qa.json").items}
    rap = {it.id: it for it in load_yollava_visual_qa(bench_dir / "rap" / "yollava-visual-qa.json").items}
    assert yo.keys() == rap.keys()
    differ = [k for k in yo if yo[k].answer != rap[k].answer]
    assert differ == ["brown-duck/yollava-data/test/brown-duck/0.png"]  # "Duck or Crocodile?": RAP says A
    assert rap[differ[0]].question == "What type of animal is <brown-duck>?"  # bare `sks` renamed too


def test_text_qa_reads_singular_option_key(bench_dir: Path) -> None:
    lb = load_yollava_text_qa(bench_dir / "rap" / "yollava-text-only-qa.json")
    assert lb.report.items == 400
    assert lb.report.by_answer == {"A": 390, "B": 10}
    assert all(isinstance(it, ChoiceItem) and set(it.options) == {"A", "B"} and not it.images for it in lb.items)
    assert lb.items[0].id == "bo/0" and lb.items[0].question == "Is <bo> a dog or a cat?"


def test_rap_recognition_dedupes_the_duplicated_positives(bench_dir: Path) -> None:
    raw = json.loads((bench_dir / "rap" / "recognition_test.json").read_text())
    assert len(raw) == 13653
    assert sum(1 for r in raw if r["type"] == "negative" and r["correct_answer"]) == 333  # the quirk
    lb = load_rap_recognition(bench_dir / "rap" / "recognition_test.json")
    assert lb.report.items == 13320
    assert lb.report.by_answer == {"yes": 333, "no": 12987}
    assert lb.report.duplicates_removed == 333
    assert "333 positives repeated as type 'negative'" in lb.report.notes[0]
    pos = [it for it in lb.items if it.expected]
    # every kept positive is an image of its own concept; no positive survives as a "negative"
    assert all(isinstance(it, RecognitionItem) and it.images[0].split("/")[2] == it.concepts[0] for it in pos)
    assert {it.kind for it in pos} == {"positive"}
    assert {it.kind for it in lb.items if not it.expected} == {"negative: another concept's image"}


def test_rap_recognition_quirk_on_a_small_file(tmp_path: Path) -> None:
    rows = [
        {"image": "a/1.png", "question": "<image>\nIs <x> in this image?", "concept": "x", "type": "positive",
         "correct_answer": True},
        {"image": "a/1.png", "question": "<image>\nIs <x> in this image?", "concept": "x", "type": "negative",
         "correct_answer": True},
        {"image": "a/1.png", "question": "<image>\nIs <y> in this image?", "concept": "y", "type": "negative",
         "correct_answer": False},
    ]
    f = tmp_path / "rec.json"
    f.write_text(json.dumps(rows))
    lb = load_rap_recognition(f)
    assert [(it.concepts[0], it.expected) for it in lb.items] == [("x", True), ("y", False)]
    assert lb.report.duplicates_removed == 1
    assert lb.items[0].question == "Is <x> in this image?"
    rows.append(dict(rows[0], correct_answer=False))  # the same pair with both answers: refuse, loudly
    f.write_text(json.dumps(rows))
    with pytest.raises(BenchmarkFormatError, match="both answers"):
        load_rap_recognition(f)


@pytest.mark.parametrize(
    ("name", "n", "answers", "dups"),
    [
        ("slc-yollava-qa", 400, {"A": 396, "B": 4}, 0),
        ("slc-yollava-sqa", 80, {"A": 40, "B": 40}, 0),
        ("slc-yollava-vqa", 170, {"A": 99, "B": 71}, 0),
        ("mc-qa-single", 465, {"A": 340, "B": 125}, 0),
        ("mc-qa-multi", 200, {"A": 155, "B": 45}, 0),
        ("mc-vqa-single", 865, {"A": 447, "B": 389, "C": 29}, 0),
        ("mc-vqa-multi", 447, {"A": 285, "B": 151, "C": 11}, 25),
        ("mc-rec-multi", 1069, {"yes": 200, "no": 869}, 71),
    ],
)
def test_sharegpt_files(bench_dir: Path, name: str, n: int, answers: dict, dups: int) -> None:
    lb = load_benchmark(name, annotations=bench_dir)
    assert lb.report.items == n
    assert lb.report.by_answer == answers
    assert lb.report.duplicates_removed == dups


def test_mc_recognition_fields(bench_dir: Path) -> None:
    lb = load_sharegpt_eval(bench_dir / "slc" / "mc_eval__rec_multi.json")
    first = lb.items[0]
    assert isinstance(first, RecognitionItem)
    assert first.concepts == ["Bafan", "Xuezhixia"] and first.expected is True
    assert first.present == {"Bafan": True, "Xuezhixia": True}
    assert first.system and "<Bafan> is a young man" in first.system
    # is_positive is exactly "every concept to check is present" in this file
    assert all(it.expected == all(it.present[c] for c in it.concepts) for it in lb.items)
    assert {len(it.concepts) for it in lb.items} == {2, 3, 4}


def test_mc_choice_options_parsed_from_the_question_text(bench_dir: Path) -> None:
    lb = load_sharegpt_eval(bench_dir / "slc" / "mc_eval__vqa_single.json")
    first = lb.items[0]
    assert isinstance(first, ChoiceItem)
    assert first.question == "What type of clothing is <Bafan> wearing?"
    assert first.options == {"A": "Casual wear", "B": "School uniform", "C": "Sports attire"}
    assert first.concepts == ["Bafan"]
    # the irregular separators of this file all parse
    assert split_options("What color? A: Red. B: Blue.") == ("What color?", {"A": "Red", "B": "Blue"})
    assert split_options("Holding?A. A handkerchief;B. A glass of wine;C. A book;") == (
        "Holding?", {"A": "A handkerchief", "B": "A glass of wine", "C": "A book"})
    assert split_options("No options here.") is None


def test_image_lookup_on_a_synthetic_tree_with_real_paths(tmp_path: Path, bench_dir: Path, yollava_paths,
                                                          image_tree) -> None:
    present = yollava_paths("test/shiba-gray/", 3)
    assert present[0].startswith("yollava-data/test/shiba-gray/")
    image_tree(tmp_path, present)
    lb = load_yollava_visual_qa(bench_dir / "yollava" / "yollava-visual-qa.json", root=tmp_path)
    rep = lb.report
    assert rep.root == str(tmp_path)
    referenced = {p for it in lb.items for p in it.images}
    assert rep.images_referenced == len(referenced)
    assert set(rep.images_missing) == referenced - set(present)  # reported, not raised
    available = lb.available()
    assert available and all(set(it.images) <= set(present) for it in available)
    assert rep.items_with_missing_images == rep.items - len(available)
    # a root that is yollava-data/ itself also works
    lb2 = load_yollava_visual_qa(bench_dir / "yollava" / "yollava-visual-qa.json", root=tmp_path / "yollava-data")
    assert lb2.report.images_missing == rep.images_missing


def test_recognition_missing_images_reported(tmp_path: Path, bench_dir: Path, yollava_paths, image_tree) -> None:
    image_tree(tmp_path, yollava_paths("test/bo/", 10))
    lb = load_benchmark("rap-recognition", root=tmp_path, annotations=bench_dir)
    assert lb.report.images_referenced == 333
    assert len(lb.report.images_missing) == 333 - 10
    assert len(lb.available()) == 10 * 40  # each bo test image asked against all 40 concepts


def test_unknown_benchmark_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkFormatError, match="unknown benchmark"):
        load_benchmark("nope")
    with pytest.raises(FileNotFoundError, match="--annotations"):
        load_benchmark("yollava-vqa", annotations=tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(BenchmarkFormatError, match="keyed by concept"):
        load_yollava_visual_qa(bad)


def test_myvlm_caption_layout(tmp_path: Path, image_tree) -> None:
    for concept in ("dog", "mug"):
        image_tree(tmp_path, [f"{concept}/0.jpg", f"{concept}/1.jpg"])
        (tmp_path / concept / "captions.json").write_text(json.dumps(
            {"0.jpg": [f"a {concept} on a table"], "1.jpg": [f"a {concept} outside"], "2.jpg": ["missing"]}))
    lb = load_myvlm_captions(tmp_path, negatives_per_concept=1)
    pos = [it for it in lb.items if it.present]
    neg = [it for it in lb.items if not it.present]
    assert len(pos) == 6 and len(neg) == 2
    assert all(isinstance(it, CaptionItem) for it in lb.items)
    assert neg[0].concepts == ["dog"] and neg[0].images[0].startswith("mug/")
    assert sorted(lb.report.images_missing) == ["dog/2.jpg", "mug/2.jpg"]


def test_mcllava_native_layout(tmp_path: Path, image_tree) -> None:
    single = tmp_path / "two_concept" / "concept" / "test" / "Bafan"
    multi = tmp_path / "two_concept" / "multi" / "Bafan_Xuezhixia"
    image_tree(tmp_path, ["two_concept/concept/test/Bafan/0.png", "two_concept/multi/Bafan_Xuezhixia/0.png"])
    (single / "vqa.json").write_text(json.dumps({"0.png": {"Human": "What is <Bafan> wearing?", "AI": "A hoodie."}}))
    (multi / "vqa.json").write_text(json.dumps(
        {"0.png": [{"Human": "Where is <Bafan>?", "AI": "In a park."}, {"Human": "Who is left?", "AI": "Bafan."}]}))
    (multi / "position.json").write_text(json.dumps({"0.png": {"Bafan": [1, 2], "Xuezhixia": None}}))
    vqa = load_mcllava_native(tmp_path, "vqa")
    assert [type(it) for it in vqa.items] == [OpenVQAItem] * 3
    assert vqa.items[0].reference == "A hoodie." and vqa.report.images_missing == []
    assert {it.group for it in vqa.items} == {"single", "multi"}
    caps = {it.images[0]: it for it in load_mcllava_native(tmp_path, "caption").items}
    multi_cap = caps["two_concept/multi/Bafan_Xuezhixia/0.png"]
    assert multi_cap.present == ["Bafan"] and multi_cap.concepts == ["Bafan", "Xuezhixia"]
    assert caps["two_concept/concept/test/Bafan/0.png"].present == ["Bafan"]


def test_slc_eval_takes_a_published_file(bench_dir: Path) -> None:
    assert benchmark_for_file(bench_dir / "rap" / "yollava-visual-qa.json") == "rap-yollava-vqa"
    assert benchmark_for_file(bench_dir / "yollava" / "yollava-visual-qa.json") == "yollava-vqa"
    assert benchmark_for_file(bench_dir / "slc" / "mc_eval__rec_multi.json") == "mc-rec-multi"
    with pytest.raises(BenchmarkFormatError, match="concept database"):
        benchmark_for_file(bench_dir / "rap" / "database.json")
    with pytest.raises(BenchmarkFormatError, match="not a benchmark"):
        benchmark_for_file(bench_dir / "yollava" / "file-list.txt")

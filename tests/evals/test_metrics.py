"""Metric definitions on hand-computed cases, through the scoring the report uses (slc.evals.scoring);
char-BLEU against nltk, the library MC-LLaVA's scorer calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from slc.evals.baselines import trivial_reply
from slc.evals.datasets import load_rap_recognition, load_yollava_text_qa
from slc.evals.items import CaptionItem, ChoiceItem, RecognitionItem
from slc.evals.metrics import char_bleu, shuffle_options
from slc.evals.scoring import score_items


def _rec(expected: list[bool]) -> list[RecognitionItem]:
    return [RecognitionItem(id=str(i), benchmark="b", concepts=["bo"], question="?", expected=e)
            for i, e in enumerate(expected)]

def test_recognition_scores_hand_computed() -> None:
    items = _rec([True, True, True, True, False, False, False, False, False, False])
    replies = ["Yes", "yes.", "Yes, <bo> is there", "maybe", "No", "no", "No.", "Nope", "Yes", None]
    s = score_items(items, replies)  # "maybe" and None (no reply) are wrong on both sides
    assert s["positive"] == pytest.approx(3 / 4)
    assert s["negative"] == pytest.approx(4 / 6)
    assert s["weighted"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert s["accuracy"] == pytest.approx(7 / 10)
    assert score_items(_rec([True]), ["Yes"])["weighted"] is None  # no negatives: no weighted score


def test_duplicated_positive_quirk_changes_the_scores(bench_dir: Path) -> None:
    """A perfect model scored on RAP's rows as published loses 333 'negatives' it answered correctly."""
    import json

    raw = json.loads((bench_dir / "rap" / "recognition_test.json").read_text())
    # scoring the raw file by its `type` field: a perfect model answers correct_answer every time
    pos = [r for r in raw if r["type"] == "positive"]
    neg = [r for r in raw if r["type"] == "negative"]
    raw_neg_acc = sum(1 for r in neg if r["correct_answer"] is False) / len(neg)
    assert len(pos) == 333 and len(neg) == 13320
    assert raw_neg_acc == pytest.approx(12987 / 13320)  # 0.975, not 1.0
    items = load_rap_recognition(bench_dir / "rap" / "recognition_test.json").items
    s = score_items(items, ["Yes" if it.expected else "No" for it in items])
    assert (s["positive"], s["negative"], s["weighted"]) == (1.0, 1.0, 1.0)
    always_no = score_items(items, ["No"] * len(items))
    assert (always_no["positive"], always_no["negative"], always_no["weighted"]) == (0.0, 1.0, 0.5)
    assert always_no["accuracy"] == pytest.approx(12987 / 13320)  # why plain accuracy is not reported alone


def test_choice_accuracy_and_always_a(bench_dir: Path) -> None:
    four = [ChoiceItem(id=str(i), benchmark="b", question="?", options={"A": "x", "B": "y", "C": "z"}, answer=a)
            for i, a in enumerate("AABB")]
    assert score_items(four, ["A", None, "b", "C"])["accuracy"] == pytest.approx(2 / 4)
    items = load_yollava_text_qa(bench_dir / "rap" / "yollava-text-only-qa.json").items
    assert score_items(items, ["A"] * len(items))["accuracy"] == pytest.approx(0.975)
    shuffled = [shuffle_options(it, seed=0) for it in items]
    acc = score_items(shuffled, ["A"] * len(items))["accuracy"]
    assert 0.4 < acc < 0.6  # shuffling removes the 97.5 % "A" bias
    assert [s.answer for s in shuffled] == [shuffle_options(it, seed=0).answer for it in items]  # deterministic


def test_shuffle_keeps_the_correct_text() -> None:
    item = ChoiceItem(id="q1", benchmark="b", question="?", options={"A": "x", "B": "y", "C": "z"}, answer="B")
    for seed in range(10):
        s = shuffle_options(item, seed)
        assert s.options[s.answer] == "y"
        assert sorted(s.options.values()) == ["x", "y", "z"] and list(s.options) == ["A", "B", "C"]
        assert s.id == f"q1#shuffled-{seed}" and s.shuffled_from == "q1"
    assert len({tuple(shuffle_options(item, seed).options.values()) for seed in range(30)}) > 1


def _nltk_char_bleu(reference: str, candidate: str) -> float:
    """MC-LLaVA's eval.py ``calculate_bleu``, verbatim in substance: nltk sentence BLEU over characters."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    return sentence_bleu([list(reference)], list(candidate), weights=(0.7, 0.3),
                         smoothing_function=SmoothingFunction().method1)


@pytest.mark.parametrize(
    ("reference", "candidate"),
    [("abc", "abc"), ("abcd", "abce"), ("abcd", "ab"), ("ab", "ba"), ("ab", "xy"), ("abc", ""), ("a", "ab"),
     ("A hoodie.", "He wears a hoodie."), ("In a park.", "a park"), ("In a school hallway.", "school"),
     ("Bafan.", "Xuezhixia is on the left, Bafan on the right.")],
)
def test_char_bleu_equals_nltk(reference: str, candidate: str) -> None:
    assert char_bleu(reference, candidate) == pytest.approx(_nltk_char_bleu(reference, candidate), abs=1e-12)


def test_char_bleu_equals_nltk_on_random_strings() -> None:
    import random

    rng = random.Random(0)
    for _ in range(200):
        ref = "".join(rng.choice("abcde ") for _ in range(rng.randint(1, 14)))
        cand = "".join(rng.choice("abcde ") for _ in range(rng.randint(0, 14)))
        assert char_bleu(ref, cand) == pytest.approx(_nltk_char_bleu(ref, cand), abs=1e-12), (ref, cand)


def test_caption_scores_myvlm_definition() -> None:
    items = [
        CaptionItem(id="1", benchmark="b", concepts=["bo"], question="", present=["bo"]),
        CaptionItem(id="2", benchmark="b", concepts=["bo"], question="", present=["bo"]),
        CaptionItem(id="3", benchmark="b", concepts=["bo"], question="", present=[]),  # bo not in image
        CaptionItem(id="4", benchmark="b", concepts=["bo", "mam"], question="", present=["mam"]),
    ]
    captions = ["<bo> on a sofa", "a dog on a sofa", "bo in the park", "Bo and mam at the beach"]
    s = score_items(items, captions)
    # correct: item1 bo, item4 mam = 2; ground truth: 1 + 1 + 0 + 1 = 3; named: 1 + 0 + 1 + 2 = 4
    assert s["recall"] == pytest.approx(2 / 3) and s["precision"] == pytest.approx(2 / 4)
    assert s["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    # MC-LLaVA caption recall: mean over images with concepts of the share named: (1 + 0 + 1) / 3
    assert s["mc_recall"] == pytest.approx(2 / 3)


def test_trivial_replies() -> None:
    item = ChoiceItem(id="q", benchmark="b", question="?", options={"A": "x", "B": "y"}, answer="B")
    assert trivial_reply("always-A", item) == "A"
    assert trivial_reply("random", item) == trivial_reply("random", item)  # deterministic per item
    with pytest.raises(ValueError, match="unknown trivial baseline"):
        trivial_reply("always-C", item)

"""Metric definitions on hand-computed cases."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from slc.evals.datasets import CaptionItem, ChoiceItem, load_rap_recognition, load_yollava_text_qa
from slc.evals.metrics import (
    caption_scores,
    char_bleu,
    choice_accuracy,
    mc_caption_recall,
    parse_option_letter,
    parse_yes_no,
    recognition_scores,
    shuffle_options,
    trivial_reply,
)

OPTS = {"A": "Dog", "B": "Cat"}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("A", "A"),
        ("(B)", "B"),
        ("Answer: B.", "B"),
        ("I think the answer is b", "B"),
        ("b", "B"),
        ("a", "A"),
        ("A. yes", "A"),
        ("B) Cat", "B"),
        ("**B**", "B"),
        ("Option B", "B"),
        ("The correct option is A.", "A"),
        ("A.\nBecause it barks.", "A"),
        ("It's a cat.", "B"),  # no letter: the option's own text
        ("A dog.", "A"),  # "A" the article is not a letter; "dog" is option A's text
        ("A cat.", "B"),  # ... so this is B, not A
        ("A or B", None),  # naming two options is not an answer (the SLC scorer would count it right)
        ("A and B", None),
        ("The answer is B, not A", None),
        ("Cat or dog", None),
        ("maybe", None),
        ("", None),
        (None, None),
        ("C", None),  # not an option
    ],
)
def test_parse_option_letter(reply, expected) -> None:
    assert parse_option_letter(reply, OPTS) == expected


def test_parse_option_letter_three_options_and_bare_letters() -> None:
    opts = {"A": "Sword", "B": "Dagger", "C": "Nunchucks"}
    assert parse_option_letter("C", opts) == "C"
    assert parse_option_letter("I would say C", opts) == "C"  # capital I is a word, not an option
    assert parse_option_letter("B or C", opts) is None
    assert parse_option_letter("A", ["A", "B"]) == "A"  # letters only, no texts


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("Yes", True), ("yes.", True), ("No", False), ("no, it is not", False), ("Yes, <bo> is there.", True),
     ("I can see it: yes", True), ("yes or no", None), ("maybe", None), ("", None), (None, None)],
)
def test_parse_yes_no(reply, expected) -> None:
    assert parse_yes_no(reply) is expected


def test_recognition_scores_hand_computed() -> None:
    expected = [True, True, True, True, False, False, False, False, False, False]
    predicted = [True, True, True, None, False, False, False, False, True, None]
    s = recognition_scores(predicted, expected)
    assert s.positive == pytest.approx(3 / 4)
    assert s.negative == pytest.approx(4 / 6)
    assert s.weighted == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert s.accuracy == pytest.approx(7 / 10) and s.unparsed == 2
    assert recognition_scores([True], [True]).weighted is None  # no negatives: no weighted score


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
    s = recognition_scores([it.expected for it in items], [it.expected for it in items])
    assert (s.positive, s.negative, s.weighted) == (1.0, 1.0, 1.0)
    always_no = recognition_scores([False] * len(items), [it.expected for it in items])
    assert (always_no.positive, always_no.negative, always_no.weighted) == (0.0, 1.0, 0.5)
    assert always_no.accuracy == pytest.approx(12987 / 13320)  # why plain accuracy is not reported alone


def test_choice_accuracy_and_always_a(bench_dir: Path) -> None:
    assert choice_accuracy(["A", None, "b", "C"], ["A", "A", "B", "B"]).accuracy == pytest.approx(2 / 4)
    items = load_yollava_text_qa(bench_dir / "rap" / "yollava-text-only-qa.json").items
    answers = [it.answer for it in items]
    assert choice_accuracy(["A"] * len(items), answers).accuracy == pytest.approx(0.975)
    shuffled = [shuffle_options(it, seed=0) for it in items]
    acc = choice_accuracy(["A"] * len(items), [it.answer for it in shuffled]).accuracy
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


def test_char_bleu_hand_computed() -> None:
    assert char_bleu("abc", "abc") == pytest.approx(1.0)
    # unigrams 3/4, bigrams (ab, bc match; ce no) 2/3, no brevity penalty
    assert char_bleu("abcd", "abce") == pytest.approx(0.75**0.7 * (2 / 3) ** 0.3)
    # shorter candidate: precisions 1, brevity penalty exp(1 - 4/2)
    assert char_bleu("abcd", "ab") == pytest.approx(math.exp(-1))
    # no bigram match: method1 smoothing, 0.1 / 1 bigram
    assert char_bleu("ab", "ba") == pytest.approx(0.1**0.3)
    assert char_bleu("ab", "xy") == 0.0  # no unigram match
    assert char_bleu("abc", "") == 0.0
    # these equal nltk 3.10's sentence_bleu([list(ref)], list(cand), weights=(0.7, 0.3), method1): see report


def test_caption_scores_myvlm_definition() -> None:
    items = [
        CaptionItem(id="1", benchmark="b", concepts=["bo"], question="", present=["bo"]),
        CaptionItem(id="2", benchmark="b", concepts=["bo"], question="", present=["bo"]),
        CaptionItem(id="3", benchmark="b", concepts=["bo"], question="", present=[]),  # bo not in image
        CaptionItem(id="4", benchmark="b", concepts=["bo", "mam"], question="", present=["mam"]),
    ]
    captions = ["<bo> on a sofa", "a dog on a sofa", "bo in the park", "Bo and mam at the beach"]
    s = caption_scores(captions, items)
    # correct: item1 bo, item4 mam = 2; ground truth: 1 + 1 + 0 + 1 = 3; named: 1 + 0 + 1 + 2 = 4
    assert (s.correct, s.ground_truth, s.named) == (2, 3, 4)
    assert s.recall == pytest.approx(2 / 3) and s.precision == pytest.approx(2 / 4)
    assert s.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    # MC-LLaVA caption recall: mean over images with concepts of the share named: (1 + 0 + 1) / 3
    assert mc_caption_recall(captions, items) == pytest.approx(2 / 3)


def test_trivial_replies() -> None:
    item = ChoiceItem(id="q", benchmark="b", question="?", options={"A": "x", "B": "y"}, answer="B")
    assert trivial_reply("always-A", item) == "A"
    assert trivial_reply("random", item) == trivial_reply("random", item)  # deterministic per item
    with pytest.raises(ValueError, match="unknown trivial baseline"):
        trivial_reply("always-C", item)

"""Reply parsing: one option letter or one yes/no, never guessed from an article or a negation.

The sweep tests feed the parser, for every item of two real files, the CORRECT option's text in the form
"The answer is a {text}": a parser that reads the article as letter A turns right answers into wrong ones
(and, on files where A is the majority answer, wrong answers into right ones).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slc.evals.datasets import load_benchmark
from slc.evals.parsing import parse_option_letter, parse_yes_no

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
        ("The answer is B because it meows.", "B"),
        ("It's a cat.", "B"),  # no letter: the option's own text
        ("A dog.", "A"),  # "A" the article is not a letter; "dog" is option A's text
        ("A cat.", "B"),  # ... so this is B, not A
        ("The answer is a cat", "B"),  # the article after a cue is not letter A either
        ("The answer is a dog", "A"),
        ("My answer is a", "A"),  # a letter with nothing after it is a letter
        ("A or B", None),  # naming two options is not an answer (the SLC scorer would count it right)
        ("A and B", None),
        ("The answer is B, not A", None),
        ("Not A.", None),  # a negated letter is not a choice
        ("It is not a cat.", None),  # nor is a negated option text
        ("It is not a dog, it is a cat.", None),  # mentions under a negation: unparseable, not guessed
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


def test_option_text_inside_another_option_text() -> None:
    opts = {"A": "dog", "B": "hot dog"}
    assert parse_option_letter("It is a hot dog.", opts) == "B"  # "dog" is only part of B's text here
    assert parse_option_letter("It is a dog.", opts) == "A"
    assert parse_option_letter("No", {"A": "Yes", "B": "No"}) == "B"  # an option that IS a negation word
    assert parse_option_letter("No", {"A": "No", "B": "No"}) is None  # degenerate item: both options match


@pytest.mark.parametrize(("benchmark", "n"), [("yollava-vqa", 170), ("mc-vqa-single", 865)])
def test_correct_option_text_after_an_article_is_never_misread(bench_dir: Path, benchmark: str, n: int) -> None:
    items = load_benchmark(benchmark, annotations=bench_dir).items
    assert len(items) == n
    wrong = [(it.id, it.answer, parse_option_letter(f"The answer is a {it.options[it.answer]}", it.options))
             for it in items]
    wrong = [w for w in wrong if w[2] != w[1]]
    assert wrong == []


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("Yes", True), ("yes.", True), ("No", False), ("no, it is not", False), ("Yes, <bo> is there.", True),
     ("I can see it: yes", True), ("yes or no", None), ("maybe", None), ("", None), (None, None),
     ("I cannot say yes.", None), ("It is not a yes.", None)],
)
def test_parse_yes_no(reply, expected) -> None:
    assert parse_yes_no(reply) is expected

"""Reading ONE answer out of a model's reply: an option letter, or yes/no. Never a guess.

Why so strict: the SLC authors' scorer counts a reply as correct when the right letter appears anywhere in
it, so "A or B" is right whatever the answer; a looser parser reads the article in "The answer is a dog" as
letter A, which on benchmarks where A is the majority answer inflates every model's score. A reply is
accepted only when it names exactly one option: by a letter that is written as a letter ("B", "(b)",
"Answer: B.", "A. yes") or, failing that, by exactly one option's own text. An article or pronoun ("a dog",
"A dog", "I think") is never a letter, and a letter or option text under a negation ("not A", "it is not a
cat") makes the reply unparseable rather than read either way. Unparseable (None) is its own outcome: the
report counts it apart from wrong answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_CUE = re.compile(
    r"(?:answer|option|choice)\s*(?:is|would\s+be|should\s+be|=)?\s*[:\-]?\s*[\(\[]?([A-Za-z])[\)\]]?(?![\w'])",
    re.IGNORECASE,
)
_PAREN = re.compile(r"[\(\[]([A-Za-z])[\)\]]")
_LEADING = re.compile(r"^\W*([A-Za-z])\s*[.):](?!\w)", re.MULTILINE)  # "A. yes", "b)", "B:" at a line start
_BARE_UPPER = re.compile(r"(?<![\w'])([A-Z])(?![\w'])")
_NEXT_WORD = re.compile(r"\s+([\w<\"'][^\s]*)")  # the next token: a word, a number, a <tag>, a quote
_CONJ = {"or", "and", "nor", "vs", "versus", "then"}
_WORD_LETTERS = {"a", "i"}  # letters that are also English words: the article "a", the pronoun "I"
_NOISE = re.compile(r"[\s*_`\"'.,;:!?()\[\]{}<>-]+")
_NEGATION = re.compile(
    r"\b(?:not|no|never|neither|nor|without|except|cannot|can't|isn't|aren't|wasn't|weren't|don't|doesn't|"
    r"didn't|won't|wouldn't|shouldn't|couldn't|n't)\W+(?:\w+\W+){0,2}$",
    re.IGNORECASE,
)


def _negated(text: str, start: int) -> bool:
    """Whether a negation governs the words just before ``start`` ("not A", "isn't a cat", "not really A")."""
    return bool(_NEGATION.search(text[max(0, start - 40) : start]))


def _is_word(text: str, letter: str, end: int) -> bool:
    """An "a"/"A"/"I" followed by a word, a number or a tag ("a dog", "a 90", "a <bo>", "I think") is the
    article or the pronoun, not an option letter ("A or B" is letters)."""
    nxt = _NEXT_WORD.match(text, end)
    return letter.lower() in _WORD_LETTERS and nxt is not None and nxt.group(1).lower() not in _CONJ


def _letter_marks(text: str) -> list[tuple[str, int]]:
    """(letter, position) of everything in ``text`` written as an option letter."""
    marks: list[tuple[str, int]] = []
    for rx in (_CUE, _PAREN, _LEADING):
        for m in rx.finditer(text):
            if rx is not _PAREN and _is_word(text, m.group(1), m.end(1)):
                continue
            marks.append((m.group(1).upper(), m.start(1)))
    for m in _BARE_UPPER.finditer(text):
        nxt = _NEXT_WORD.match(text, m.end())
        if _is_word(text, m.group(1), m.end(1)) or (nxt and nxt.group(1)[0].islower() and nxt.group(1) not in _CONJ):
            continue  # "A dog", "I think", "B because": a word or a sentence, not a bare letter
        marks.append((m.group(1), m.start(1)))
    return marks


def _text_spans(text: str, options: Mapping[str, str]) -> dict[str, list[tuple[int, int]]]:
    """Where each option's text (and its text without a leading article) occurs, as whole words."""
    low = text.lower()
    spans: dict[str, list[tuple[int, int]]] = {}
    for letter, value in options.items():
        v = (value or "").strip().lower().rstrip(".")
        forms = {v, re.sub(r"^(?:a|an|the)\s+", "", v)} - {""}
        for form in forms:
            for m in re.finditer(r"(?<!\w)" + re.escape(form) + r"(?!\w)", low):
                spans.setdefault(letter.upper(), []).append(m.span())
    return spans


def _inside_other(letter: str, spans: dict[str, list[tuple[int, int]]]) -> bool:
    """Every mention of ``letter``'s text lies inside a LONGER mention of another option ("dog" in "hot dog")."""
    def covered(s: tuple[int, int]) -> bool:
        return any(o[0] <= s[0] and s[1] <= o[1] and (o[1] - o[0]) > (s[1] - s[0])
                   for other, os_ in spans.items() if other != letter for o in os_)

    return all(covered(s) for s in spans[letter])


def parse_option_letter(reply: str | None, options: Mapping[str, str] | Sequence[str]) -> str | None:
    """The one option a reply chooses, or None when it names none, more than one, or one under a negation.

    Accepted: "A", "(b)", "B.", "Answer: B.", "the answer is b", "A. yes", "Option B", "The answer is B
    because...", and the option's own text ("Dog", "It's a cat") when no letter is written; a written letter
    wins over option text. None: "A or B", "B, not A", "Not A", "It is not a cat", two option texts, or an
    item whose options share their text.
    """
    if reply is None:
        return None
    letters = {k.upper() for k in options}
    text = reply.strip()
    if not text:
        return None
    whole = _NOISE.sub("", text)
    if len(whole) == 1 and whole.upper() in letters:
        return whole.upper()
    marks = [(letter, pos) for letter, pos in _letter_marks(text) if letter in letters]
    if any(_negated(text, pos) for _, pos in marks):
        return None
    found = {letter for letter, _ in marks}
    if found:
        return found.pop() if len(found) == 1 else None
    if not isinstance(options, Mapping):
        return None
    spans = _text_spans(text, options)
    if any(_negated(text, start) for ss in spans.values() for start, _ in ss):
        return None
    hits = [letter for letter in spans if not _inside_other(letter, spans)]
    return hits[0] if len(hits) == 1 else None


_YES = {"yes", "yeah", "yep", "true", "correct"}
_NO = {"no", "nope", "false"}


def parse_yes_no(reply: str | None) -> bool | None:
    """Yes/no from a reply: its first word when that is yes/no (not "yes or no"), else the only one of
    yes/no it contains, unless a negation governs it ("I cannot say yes"); None when it has neither or both."""
    if not reply:
        return None
    words = re.findall(r"[a-z]+", reply.lower())
    if not words:
        return None
    if len(words) > 1 and words[1] == "or":
        return None
    if words[0] in _YES:
        return True
    if words[0] in _NO:
        return False
    found = [(m.group(0).lower() in {"yes", "true"}, m.start()) for m in
             re.finditer(r"\b(?:yes|true|no|false)\b", reply, re.IGNORECASE)]
    kinds = {is_yes for is_yes, _ in found}
    if len(kinds) != 1 or any(_negated(reply, pos) for _, pos in found):
        return None
    return kinds.pop()


__all__ = ["parse_option_letter", "parse_yes_no"]

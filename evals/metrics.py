"""Metrics exactly as BENCHMARKS.md defines them, plus the debiasing the field's papers leave out.

Why parse ONE letter: the SLC authors' scorer counts a reply as correct when the right letter appears anywhere
in it, so "A or B" is right whatever the answer. We accept a reply only when it names exactly one option
(by letter, or failing that by the option's text); anything else is unparsed and scored wrong.

Why debiased variants: Yo'LLaVA's text QA is 97.5% "A" and its visual QA 58.2% "A"; a model that always says
"A" looks good. Every score is printed beside trivial baselines (always-A, always-yes, always-no, random) and,
for multiple choice, beside a run on the same items with options shuffled deterministically.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel

from slc.evals.datasets import CaptionItem, ChoiceItem

# ----------------------------------------------------------------------------------------------------------
# Reply parsing
# ----------------------------------------------------------------------------------------------------------
_CUE = re.compile(
    r"(?:answer|option|choice)\s*(?:is|would\s+be|should\s+be|=)?\s*[:\-]?\s*[\(\[]?([A-Za-z])[\)\]]?(?![\w'])",
    re.IGNORECASE,
)
_PAREN = re.compile(r"[\(\[]([A-Za-z])[\)\]]")
_LEADING = re.compile(r"^\W*([A-Za-z])\s*[.):](?!\w)", re.MULTILINE)  # "A. yes", "b)", "B:" at a line start
_BARE_UPPER = re.compile(r"(?<![\w'])([A-Z])(?![\w'])")
_CONJ = {"or", "and", "nor", "vs", "versus", "then"}
_NOISE = re.compile(r"[\s*_`\"'.,;:!?()\[\]{}<>-]+")


def parse_option_letter(reply: str | None, options: Mapping[str, str] | Sequence[str]) -> str | None:
    """The one option a reply chooses, or None when it names none or more than one.

    Accepted: "A", "(b)", "B.", "Answer: B.", "the answer is b", "A. yes", "Option B", and the option's own text
    ("Dog") when no letter is named; a named letter wins over option text. Ambiguous (None): "A or B",
    "A and B", "B, not A", two option texts. Capital "A"/"I" used as a word ("A dog", "I think") is not a letter.
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
    found: set[str] = set()
    for rx in (_CUE, _PAREN, _LEADING):
        found.update(m.group(1).upper() for m in rx.finditer(text))
    for m in _BARE_UPPER.finditer(text):
        letter = m.group(1)
        nxt = re.match(r"\s+([a-z]+)", text[m.end():])
        if nxt and nxt.group(1) not in _CONJ:  # "A dog", "I think": a word, not an option letter
            continue
        found.add(letter)
    found &= letters
    if len(found) == 1:
        return found.pop()
    if found:
        return None
    if isinstance(options, Mapping):
        low = text.lower()
        hits = [k.upper() for k, v in options.items()
                if v and re.search(r"(?<!\w)" + re.escape(v.strip().lower().rstrip(".")) + r"(?!\w)", low)]
        if len(hits) == 1:
            return hits[0]
    return None


_YES = {"yes", "yeah", "yep", "true", "correct"}


def parse_yes_no(reply: str | None) -> bool | None:
    """Yes/no from a reply: its first word when that is yes/no (not "yes or no"), else the only one of
    yes/no it contains; None when it has neither or both."""
    if not reply:
        return None
    words = re.findall(r"[a-z]+", reply.lower())
    if not words:
        return None
    if len(words) > 1 and words[1] == "or":
        return None
    if words[0] in _YES:
        return True
    if words[0] in {"no", "nope", "false"}:
        return False
    has_yes = any(w in {"yes", "true"} for w in words)
    has_no = any(w in {"no", "false"} for w in words)
    if has_yes != has_no:
        return has_yes
    return None


# ----------------------------------------------------------------------------------------------------------
# Scores
# ----------------------------------------------------------------------------------------------------------
class RecognitionScore(BaseModel):
    """positive = share of "yes" on positives; negative = share of "no" on negatives; weighted = their mean."""

    positive: float | None
    negative: float | None
    weighted: float | None
    accuracy: float | None
    n_positive: int
    n_negative: int
    unparsed: int


def recognition_scores(predicted: Sequence[bool | None], expected: Sequence[bool]) -> RecognitionScore:
    """An unparsed reply (None) is wrong on both sides; weighted is None unless both sides have items."""
    if len(predicted) != len(expected):
        raise ValueError("predicted and expected differ in length")
    pos = [p is True for p, e in zip(predicted, expected) if e]
    neg = [p is False for p, e in zip(predicted, expected) if not e]
    p_acc = sum(pos) / len(pos) if pos else None
    n_acc = sum(neg) / len(neg) if neg else None
    weighted = (p_acc + n_acc) / 2 if p_acc is not None and n_acc is not None else None
    total = len(expected)
    acc = (sum(pos) + sum(neg)) / total if total else None
    return RecognitionScore(positive=p_acc, negative=n_acc, weighted=weighted, accuracy=acc, n_positive=len(pos),
                            n_negative=len(neg), unparsed=sum(1 for p in predicted if p is None))


class ChoiceScore(BaseModel):
    accuracy: float | None
    n: int
    unparsed: int


def choice_accuracy(predicted: Sequence[str | None], answers: Sequence[str]) -> ChoiceScore:
    """Exact match of the parsed letter; an unparsed reply (None) is wrong."""
    if len(predicted) != len(answers):
        raise ValueError("predicted and answers differ in length")
    n = len(answers)
    correct = sum(1 for p, a in zip(predicted, answers) if p is not None and p.upper() == a.upper())
    return ChoiceScore(accuracy=correct / n if n else None, n=n, unparsed=sum(1 for p in predicted if p is None))


def concept_mentions(caption: str, names: Iterable[str]) -> set[str]:
    """Concept names a caption uses, as ``<name>`` or as the bare name (whole word, case-insensitive)."""
    low = caption.lower()
    out = set()
    for name in names:
        n = name.lower()
        if f"<{n}>" in low or re.search(r"(?<![\w-])" + re.escape(n) + r"(?![\w-])", low):
            out.add(name)
    return out


class CaptionScore(BaseModel):
    """MyVLM captioning: recall = correct / ground-truth concepts; precision = correct / concepts named."""

    recall: float | None
    precision: float | None
    f1: float | None
    correct: int
    ground_truth: int
    named: int


def caption_scores(captions: Sequence[str], items: Sequence[CaptionItem]) -> CaptionScore:
    """Counted per (caption, concept): a concept the model was told about (``item.concepts``) and named in the
    caption is correct when present in the image, a false mention otherwise (it lowers precision). With one
    concept per caption this is MyVLM's caption-level definition."""
    correct = gt = named = 0
    for cap, it in zip(captions, items, strict=True):
        mentioned = concept_mentions(cap or "", it.concepts)
        present = set(it.present)
        correct += len(mentioned & present)
        gt += len(present)
        named += len(mentioned)
    recall = correct / gt if gt else None
    precision = correct / named if named else None
    f1 = (2 * recall * precision / (recall + precision)) if recall and precision else (0.0 if gt and named else None)
    return CaptionScore(recall=recall, precision=precision, f1=f1, correct=correct, ground_truth=gt, named=named)


def mc_caption_recall(captions: Sequence[str], items: Sequence[CaptionItem]) -> float | None:
    """MC-LLaVA caption recall: per image, the share of present concepts the caption names; mean over images."""
    shares = []
    for cap, it in zip(captions, items, strict=True):
        if not it.present:
            continue
        shares.append(len(concept_mentions(cap or "", it.present)) / len(it.present))
    return sum(shares) / len(shares) if shares else None


def char_bleu(reference: str, candidate: str, weights: Sequence[float] = (0.7, 0.3), epsilon: float = 0.1) -> float:
    """MC-LLaVA's open-VQA score: sentence BLEU over CHARACTERS, weights (0.7, 0.3), smoothing "method1".

    Re-implemented (no nltk) to match ``nltk.translate.bleu_score.sentence_bleu([list(ref)], list(cand),
    weights=(0.7, 0.3), smoothing_function=SmoothingFunction().method1)`` as MC-LLaVA's eval.py calls it:
    p_n = clipped n-gram matches / max(1, candidate n-grams); a p_n with zero matches becomes epsilon /
    max(1, candidate n-grams) (method1); the score is 0 when no unigram matches; brevity penalty
    BP = 1 if c > r else exp(1 - r / c) (c, r = candidate and reference lengths, 0 when c = 0);
    BLEU = BP * exp(sum_n w_n log p_n).
    """
    ref, hyp = list(reference), list(candidate)
    if not hyp:
        return 0.0
    logs = []
    for n, w in enumerate(weights, start=1):
        hyp_ngrams = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
        ref_ngrams = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
        matches = sum(min(c, ref_ngrams[g]) for g, c in hyp_ngrams.items())
        denom = max(1, sum(hyp_ngrams.values()))
        if n == 1 and matches == 0:
            return 0.0
        p = matches / denom if matches else epsilon / denom
        logs.append(w * math.log(p))
    c, r = len(hyp), len(ref)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(sum(logs))


# ----------------------------------------------------------------------------------------------------------
# Debiasing
# ----------------------------------------------------------------------------------------------------------
def _rng(key: str, seed: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def shuffle_options(item: ChoiceItem, seed: int = 0) -> ChoiceItem:
    """The same question with its option texts permuted, deterministically from (seed, item id).

    Letters stay A, B, ... in order; the texts move, and ``answer`` follows the correct text. The id gets a
    ``#shuffled-<seed>`` suffix so results of both variants live side by side.
    """
    letters = list(item.options)
    texts = [item.options[k] for k in letters]
    correct_text = item.options[item.answer]
    order = list(range(len(texts)))
    _rng(item.id, seed).shuffle(order)
    new_options = {letters[i]: texts[j] for i, j in enumerate(order)}
    new_answer = letters[[texts[j] for j in order].index(correct_text)]
    return item.model_copy(update={"id": f"{item.id}#shuffled-{seed}", "options": new_options,
                                   "answer": new_answer, "shuffled_from": item.id})


TRIVIAL_BASELINES = ("always-A", "always-yes", "always-no", "random")
#: The baselines that make sense per task (printed beside every score of that task).
BASELINES_FOR_TASK: dict[str, tuple[str, ...]] = {
    "choice": ("always-A", "random"),
    "recognition": ("always-yes", "always-no", "random"),
}


def trivial_reply(name: str, item, seed: int = 0) -> str:
    """What a trivial baseline replies to an item (also used as a runnable mode)."""
    if name == "always-A":
        return "A"
    if name == "always-yes":
        return "Yes"
    if name == "always-no":
        return "No"
    if name == "random":
        rng = _rng(item.id, seed + 1)
        if isinstance(item, ChoiceItem):
            return rng.choice(list(item.options))
        return rng.choice(["Yes", "No"])
    raise ValueError(f"unknown trivial baseline {name!r}; known: {', '.join(TRIVIAL_BASELINES)}")

"""Metric primitives as BENCHMARKS.md and the benchmarks' own scorers define them, and the option shuffling
the field's papers leave out.

What is here: which concepts a caption names, character BLEU (MC-LLaVA's open-VQA score), caption F1 from
counts, and deterministic option shuffling. How a reply is read is :mod:`slc.evals.parsing`; how replies
add up to every reported score (accuracy, weighted recognition, recall/precision/F1, mean BLEU) is
:mod:`slc.evals.scoring`.

Why a shuffled variant: Yo'LLaVA's text QA is 97.5% "A" and its visual QA 58.2% "A"; a model that always says
"A" looks good. Every multiple-choice score is printed beside the same items with their options shuffled
deterministically, and beside the trivial baselines' expected values (:mod:`slc.evals.baselines`).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from slc.evals.items import ChoiceItem


def concept_mentions(caption: str, names: Iterable[str]) -> set[str]:
    """Concept names a caption uses, as ``<name>`` or as the bare name (whole word, case-insensitive)."""
    low = caption.lower()
    out = set()
    for name in names:
        n = name.lower()
        if f"<{n}>" in low or re.search(r"(?<![\w-])" + re.escape(n) + r"(?![\w-])", low):
            out.add(name)
    return out


def caption_f1(correct: np.ndarray, ground_truth: np.ndarray, named: np.ndarray) -> np.ndarray:
    """F1 from the counts (element-wise): 2PR / (P + R) = 2 correct / (ground truth + named). 0 when nothing
    right was named (a model that never names a concept scores 0, not "undefined"); NaN only when there is
    nothing to find and nothing was named."""
    denom = ground_truth + named
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 2 * correct / np.where(denom > 0, denom, 1), np.nan)


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
def seeded_rng(key: str, seed: int) -> random.Random:
    """A random stream fixed by (seed, key): the same item gets the same draw in every run."""
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
    seeded_rng(item.id, seed).shuffle(order)
    new_options = {letters[i]: texts[j] for i, j in enumerate(order)}
    new_answer = letters[[texts[j] for j in order].index(correct_text)]
    return item.model_copy(update={"id": f"{item.id}#shuffled-{seed}", "options": new_options,
                                   "answer": new_answer, "shuffled_from": item.id})

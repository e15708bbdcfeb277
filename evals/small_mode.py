"""The "small" mode: the small VLM alone (slc.agent.small_vlm.SmallVLM), told what memory knows of the concepts.

How it answers, and why (decided here, printed in each row's ``meta.method``):
- Recognition: the detector's own recognition pass (``detect(..., locate="never")``: its recognition protocol,
  one batched pass per adapter group, no JSON generation), read as a FORCED CHOICE: "Yes" when
  P(yes | yes or no) >= 0.5. This is
  the decision the SLC graph receives from the small model; the detector's "unknown" (too little Yes/No
  probability mass) is kept in ``meta`` rather than turned into an unparsed reply, because the published
  small-model numbers are forced Yes/No answers too. Several concepts: "Yes" only when all are present.
- Multiple choice: the option letter with the highest next-token probability after the question and its
  options (every single-token spelling of a letter summed, like the Yes/No scorer). Why not generate and
  parse: a small model often answers in a sentence or repeats the option text; likelihood is equivalent to
  constrained decoding, costs one forward pass, and never leaves an item unparsed. It flatters the small
  model's formatting, not its knowledge; the letter's probability mass is kept in ``meta`` to show it.
- Open questions and captions: greedy generation (``small.max_new_tokens``).
The concept facts (category, description, routed meta adapter) come from the eval tenant's memory through
:func:`slc.memory.queries.concept_query`, exactly as the graph's personalize node gets them; concepts memory
lacks fall back to the item's own system text. Letter likelihood and generation run on the runtime's public
:meth:`~slc.agent.small_vlm.SmallVLM.handle`, so its pass hook counts them like every detection.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from slc.agent import prompts
from slc.agent.concept_prompts import concept_context
from slc.agent.detection import ConceptQuery
from slc.agent.images import load_image
from slc.agent.recognition import single_token_ids
from slc.evals.fingerprint import Config, describe_small_vlm, memory_digest
from slc.evals.injection import injection_of, injection_scope
from slc.evals.items import ChoiceItem, Item, RecognitionItem
from slc.evals.paths import resolve_image
from slc.evals.predictors import Prediction, instrument_small_vlm, measure, render_prompt
from slc.memory.queries import concept_query

if TYPE_CHECKING:
    from PIL.Image import Image
    from transformers import PreTrainedTokenizerBase, ProcessorMixin

    from slc.agent.small_vlm import SmallVLM
    from slc.memory import ConceptMemory

Meta = dict[str, object]


def letter_token_ids(tokenizer: PreTrainedTokenizerBase | ProcessorMixin, letters: list[str]) -> dict[str, list[int]]:
    """Single-token ids of each letter ("A", " A"); raises ValueError when a letter has none or two share one."""
    out: dict[str, list[int]] = {}
    seen: set[int] = set()
    for letter in letters:
        ids = single_token_ids(tokenizer, (letter, f" {letter}"))
        if not ids or seen & set(ids):
            raise ValueError(f"option letter {letter!r} has no distinct single token in this vocabulary")
        seen |= set(ids)
        out[letter] = ids
    return out


class SmallVLMPredictor:
    """The small VLM alone. Thread-safe (SmallVLM serializes its own calls)."""

    def __init__(self, small_vlm: SmallVLM, memory: ConceptMemory | None = None, root: Path | None = None,
                 name: str = "small") -> None:
        self.vlm = instrument_small_vlm(small_vlm)
        self.memory = memory
        self.root = Path(root) if root is not None else None
        self.name = name

    def describe(self) -> Config:
        return {"mode": "small", "small": describe_small_vlm(self.vlm), "memory": memory_digest(self.memory),
                "prompts": {"eval": prompts.EVAL_PROMPT_VERSION}}

    # -- what the small model is told ------------------------------------------------------------------
    def query(self, name: str) -> ConceptQuery:
        """The concept as the graph's personalize node would send it (memory facts + routed adapter)."""
        if self.memory is None or not self.memory.exists(name):
            return ConceptQuery(name=name)
        memory = self.memory
        bank = self.vlm.bank
        return concept_query(memory.get(name), bank=bank, embedding=lambda: memory.concept_embedding(name, bank=bank),
                             with_reference_images=self.vlm.protocol.uses_references)

    def _images(self, item: Item) -> list[Image]:
        if item.images and self.root is None:
            raise FileNotFoundError(f"item {item.id} has images but no dataset root was given")
        out = []
        for rel in item.images:
            path = resolve_image(self.root, rel)  # type: ignore[arg-type]
            if path is None:
                raise FileNotFoundError(f"image {rel} of item {item.id} not found under {self.root}")
            out.append(load_image(path))
        return out

    def _system(self, item: Item, queries: list[ConceptQuery]) -> str | None:
        known = [concept_context(q) for q in queries if q.description or q.category]
        return "\n".join(known) if known else item.system

    # -- answering ---------------------------------------------------------------------------------------
    def __call__(self, item: Item) -> Prediction:
        start = time.perf_counter()
        with measure() as tally, injection_scope(item.images[0] if item.images else item.id) as flipped:
            reply, meta = self._answer(item)
        meta["prompt_version"] = prompts.EVAL_PROMPT_VERSION
        if injection_of(self.vlm) is not None:
            meta["injected"] = list(flipped)  # the claims flipped on purpose (slc eval --inject-errors)
        return Prediction(reply=reply, usage=tally.usage(time.perf_counter() - start), meta=meta)

    def _answer(self, item: Item) -> tuple[str | None, Meta]:
        images = self._images(item)
        queries = [self.query(c) for c in item.concepts]
        if isinstance(item, RecognitionItem) and images and queries:
            dets = self.vlm.detect(images[0], queries, locate="never")
            yes = all(d.confidence >= 0.5 for d in dets)
            return ("Yes" if yes else "No"), {
                "method": "yes/no probability (forced choice)",
                "detections": [{"concept": d.concept, "status": d.status, "p_yes": round(d.confidence, 4),
                                "yes_no_mass": d.yes_no_mass, "adapter": d.adapter} for d in dets]}
        adapters = {q.adapter for q in queries if q.adapter}
        adapter = self.vlm.merged_adapter(sorted(adapters)) if len(adapters) > 1 else next(iter(adapters), None)
        with self.vlm.using(adapter):
            model = self.vlm.handle()
            inputs = model.inputs(images, render_prompt(item), system=self._system(item, queries))
            if isinstance(item, ChoiceItem):
                import torch

                ids = letter_token_ids(self.vlm.processor, list(item.options))
                probs = torch.softmax(model.last_logits(inputs).float(), dim=-1)[0]
                p = {k: float(probs[v].sum()) for k, v in ids.items()}
                best = max(p, key=lambda k: p[k])
                return best, {"method": "option-letter likelihood", "p": {k: round(v, 6) for k, v in p.items()},
                              "letter_mass": round(sum(p.values()), 6), "adapter": adapter}
            cfg = self.vlm.config
            reply = model.generate(inputs, max_new_tokens=cfg.max_new_tokens, **cfg.generation_kwargs)[0]
            return reply, {"method": "greedy generation", "adapter": adapter}


__all__ = ["SmallVLMPredictor", "letter_token_ids"]

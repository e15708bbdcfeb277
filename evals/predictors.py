"""What the runner calls: the ``Predictor`` protocol, its result types, and the predictors that exist today.

Why a protocol and not a base class: a "mode" (large VLM alone, small VLM alone, SLC with or without
reflection, a trivial baseline, a user's own function) only has to map one benchmark item to a reply and say
what it cost. Costs of LangChain models are measured, not self-reported: :func:`measure` installs a
per-item tally that a callback (model calls, tokens), a cache wrapper (hits) and the small VLM's pass hook
(:meth:`slc.agent.small_vlm.SmallVLM.add_pass_hook`) fill in, so a graph built on LangChain models reports
its calls without knowing about the harness.

Tokens are summed as langchain_core's ``UsageMetadata`` (``add_usage``/``subtract_usage``). Its
``UsageMetadataCallbackHandler`` is not used: it drops the usage of a reply whose ``response_metadata`` has
no ``model_name`` (test doubles, some providers) and ignores the legacy ``llm_output["token_usage"]``;
``get_usage_metadata_callback`` registers a new configure hook on every call, which per item would pile up
for the whole process. Counting calls, cache hits and small-VLM passes is ours either way.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from langchain_core.caches import BaseCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages.ai import UsageMetadata, add_usage, subtract_usage
from langchain_core.outputs import Generation, LLMResult
from pydantic import BaseModel, Field

from slc.agent import prompts
from slc.agent.recognition import PassKind
from slc.evals.baselines import trivial_reply
from slc.evals.fingerprint import Config, describe_chat_model
from slc.evals.items import CaptionItem, ChoiceItem, Item, OpenVQAItem, RecognitionItem
from slc.evals.paths import resolve_image

if TYPE_CHECKING:
    from collections.abc import Iterable

    from slc.agent.small_vlm import SmallVLM


class Usage(BaseModel):
    """What answering one item cost. ``model_calls`` and tokens exclude cache hits (a rerun costs zero)."""

    model_calls: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    small_vlm_calls: int = Field(default=0, description="Local small-VLM model passes (one batched forward or one "
                                 "generate() each), counted by :func:`instrument_small_vlm`.")
    wall_s: float = 0.0


class Prediction(BaseModel):
    reply: str | None = Field(description="The model's text answer (None when it produced none).")
    usage: Usage = Field(default_factory=Usage)
    meta: dict[str, Any] = Field(default_factory=dict, description="Anything a mode wants kept (trace ids...).")


@runtime_checkable
class Predictor(Protocol):
    """Maps one benchmark item to a prediction. Must be thread-safe when run with concurrency > 1.

    A predictor should also have ``describe() -> dict``: everything that changes its answers (models,
    endpoint, prompt versions, settings; see :mod:`slc.evals.fingerprint`). Results are resumed only for the
    same description; a predictor without one is resumed by its name alone, with a warning.
    """

    name: str

    def __call__(self, item: Item) -> Prediction: ...


# ----------------------------------------------------------------------------------------------------------
# Measuring LangChain model calls
# ----------------------------------------------------------------------------------------------------------
def _no_usage() -> UsageMetadata:
    return UsageMetadata(input_tokens=0, output_tokens=0, total_tokens=0)


@dataclass
class _Tally:
    """One item's costs, filled by whichever thread runs its model calls."""

    llm_calls: int = 0  # LangChain model calls that ended, cache hits included
    cache_hits: int = 0
    tokens: UsageMetadata = field(default_factory=_no_usage)  # of every ended call
    cached_tokens: UsageMetadata = field(default_factory=_no_usage)  # of the cache hits among them
    small_vlm_passes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def usage(self, wall_s: float) -> Usage:
        billed = subtract_usage(self.tokens, self.cached_tokens)
        return Usage(model_calls=self.llm_calls - self.cache_hits, cache_hits=self.cache_hits,
                     input_tokens=billed["input_tokens"], output_tokens=billed["output_tokens"],
                     small_vlm_calls=self.small_vlm_passes, wall_s=wall_s)


_CURRENT: ContextVar[_Tally | None] = ContextVar("slc_eval_tally", default=None)
#: Set by :func:`measure` to :data:`USAGE_CALLBACK`; registered as a LangChain configure hook, so EVERY
#: LangChain run started inside the block gets the callback, including the large-VLM calls that a graph
#: makes deep inside its nodes with configs the harness never sees (slc.graphs.sessions.ask builds its own).
_HOOK: ContextVar[Any] = ContextVar("slc_eval_usage_hook", default=None)


def _usage_of(generations: Iterable[Generation]) -> UsageMetadata:
    """The summed token counts of chat generations (their messages' ``usage_metadata``)."""
    total = _no_usage()
    for g in generations:
        meta = getattr(getattr(g, "message", None), "usage_metadata", None) or {}
        tin, tout = int(meta.get("input_tokens") or 0), int(meta.get("output_tokens") or 0)
        total = add_usage(total, UsageMetadata(input_tokens=tin, output_tokens=tout, total_tokens=tin + tout))
    return total


class UsageCallback(BaseCallbackHandler):
    """Counts every chat-model/LLM call that ends (cache hits included; :class:`CountingCache` subtracts them)."""

    raise_error = False

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        tally = _CURRENT.get()
        if tally is None:
            return
        usage = _usage_of(g for gens in response.generations for g in gens)
        if not (usage["input_tokens"] or usage["output_tokens"]) and response.llm_output:
            legacy = response.llm_output.get("token_usage") or {}  # completion-style LLMs report it here
            tin, tout = int(legacy.get("prompt_tokens", 0) or 0), int(legacy.get("completion_tokens", 0) or 0)
            usage = UsageMetadata(input_tokens=tin, output_tokens=tout, total_tokens=tin + tout)
        with tally.lock:
            tally.llm_calls += 1
            tally.tokens = add_usage(tally.tokens, usage)


USAGE_CALLBACK = UsageCallback()
# Handlers from the hook are deduplicated by identity, so passing USAGE_CALLBACK explicitly too is harmless.
from langchain_core.tracers.context import register_configure_hook  # noqa: E402

register_configure_hook(_HOOK, inheritable=True)


def count_small_vlm_pass(kind: PassKind) -> None:
    """A small-VLM pass hook: one pass into the current item's tally (none outside :func:`measure`)."""
    tally = _CURRENT.get()
    if tally is not None:
        with tally.lock:
            tally.small_vlm_passes += 1


def instrument_small_vlm(vlm: SmallVLM) -> SmallVLM:
    """Count ``vlm``'s model passes into the current item's tally (idempotent; returns ``vlm``).

    Through the runtime's public pass hook: every detection, scan, graph node and eval mode ends in a pass
    of its model, so the count is what the model did, whoever called.
    """
    vlm.add_pass_hook(count_small_vlm_pass)
    return vlm


class CountingCache(BaseCache):
    """Wraps a LangChain cache: serializes access (SQLite under threads) and counts hits into the item's tally."""

    def __init__(self, inner: BaseCache) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def lookup(self, prompt: str, llm_string: str) -> Any:
        with self._lock:
            value = self.inner.lookup(prompt, llm_string)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
        tally = _CURRENT.get()
        if value is not None and tally is not None:
            cached = _usage_of(value)
            with tally.lock:
                tally.cache_hits += 1
                tally.cached_tokens = add_usage(tally.cached_tokens, cached)
        return value

    def update(self, prompt: str, llm_string: str, return_val: Any) -> None:
        with self._lock:
            self.inner.update(prompt, llm_string, return_val)

    def clear(self, **kwargs: Any) -> None:
        with self._lock:
            self.inner.clear(**kwargs)


def enable_llm_cache(path: Path) -> CountingCache:
    """Cache every LangChain model call of this process in SQLite at ``path`` (langchain-community's
    SQLiteCache, set with ``langchain_core.globals.set_llm_cache``). Keys are the exact messages (images
    included) and the model's parameters, so a rerun of the same items costs no model call."""
    from langchain_core.globals import set_llm_cache

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.cache import SQLiteCache

    # SQLiteCache deserializes its own rows with langchain's loads() and warns on every hit that the
    # default of `allowed_objects` will change; the rows are ours (written by this cache), so silence it.
    warnings.filterwarnings("ignore", message=r"The default value of `allowed_objects`",
                            module=r"langchain_community\.cache")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cache = CountingCache(SQLiteCache(database_path=str(path)))
    set_llm_cache(cache)
    return cache


def disable_llm_cache() -> None:
    from langchain_core.globals import set_llm_cache

    set_llm_cache(None)


@contextlib.contextmanager
def measure() -> Iterator[_Tally]:
    """Collect the LangChain model calls (and instrumented small-VLM passes) made inside the block."""
    tally = _Tally()
    token = _CURRENT.set(tally)
    hook = _HOOK.set(USAGE_CALLBACK)
    try:
        yield tally
    finally:
        _HOOK.reset(hook)
        _CURRENT.reset(token)


# ----------------------------------------------------------------------------------------------------------
# Predictors available now
# ----------------------------------------------------------------------------------------------------------
class TrivialPredictor:
    """always-A / always-yes / always-no / random: the floor every real mode is printed against."""

    def __init__(self, name: str, seed: int = 0) -> None:
        trivial_reply(name, ChoiceItem(id="x", benchmark="x", question="x", options={"A": "a"}, answer="A"))
        self.name = name
        self.seed = seed

    def describe(self) -> Config:
        return {"mode": "trivial", "baseline": self.name, "seed": self.seed if self.name == "random" else None}

    def __call__(self, item: Item) -> Prediction:
        return Prediction(reply=trivial_reply(self.name, item, self.seed))


class FunctionPredictor:
    """Adapts a plain ``item -> str | Prediction`` function (for ``module:callable`` modes)."""

    def __init__(self, fn: Callable[[Item], Any], name: str) -> None:
        self.fn = fn
        self.name = name

    def describe(self) -> Config:
        """The function and a hash of its source: editing it redoes its items (what it calls is not seen)."""
        import hashlib
        import inspect

        try:
            source = hashlib.sha256(inspect.getsource(self.fn).encode()).hexdigest()[:12]
        except (OSError, TypeError):
            source = None
        return {"mode": "callable", "callable": f"{self.fn.__module__}:{self.fn.__qualname__}", "source": source}

    def __call__(self, item: Item) -> Prediction:
        start = time.perf_counter()
        with measure() as tally:
            out = self.fn(item)
        if isinstance(out, Prediction):
            return out
        return Prediction(reply=None if out is None else str(out), usage=tally.usage(time.perf_counter() - start))


def render_prompt(item: Item) -> str:
    """The user text every single-model mode sends for an item (prompts from slc.agent.prompts)."""
    if isinstance(item, ChoiceItem):
        options = "\n".join(f"{k}. {v}" for k, v in item.options.items())
        return prompts.EVAL_CHOICE.format(question=item.question, options=options)
    if isinstance(item, RecognitionItem):
        return prompts.EVAL_RECOGNITION.format(question=item.question)
    if isinstance(item, OpenVQAItem):
        return prompts.EVAL_OPEN.format(question=item.question)
    if isinstance(item, CaptionItem):
        return prompts.EVAL_CAPTION.format(names=", ".join(f"<{c}>" for c in item.concepts) or "no one")
    raise TypeError(f"unsupported item {type(item).__name__}")


class ChatModelPredictor:
    """One LangChain chat model answers alone ("large VLM alone"): item text + images in, reply out.

    What it knows of the concepts, per mode:
    - "large": the item's own system text (concept descriptions in SLC's files) as the system message;
    - "large-desc" (``descriptions=True`` + ``memory``): what the eval tenant's memory holds of the item's
      concepts (description, category, attributes, tree), the facts the SLC modes' answerer gets, as the
      system message (the item's own text is not sent);
    - "large-refs" (``references=n`` + ``memory``): the first n reference photos of each of the item's
      concepts in the user turn, each group labelled with the concept's token (as the SLC verifier gets
      them: ``reference_side`` pixels, OpenAI's detail "low"), before the photo(s) of the question.
    A concept memory lacks gets nothing (as in the SLC modes, which know only what memory holds).
    """

    def __init__(self, model: Any, root: Path | None, name: str = "large-vlm", max_image_side: int = 1024,
                 use_item_system: bool = True, *, memory: Any = None, descriptions: bool = False,
                 references: int = 0, reference_side: int = 256) -> None:
        if (descriptions or references) and memory is None:
            raise ValueError("concept descriptions or reference photos need the eval tenant's memory")
        self.model = model
        self.root = Path(root) if root is not None else None
        self.name = name
        self.max_image_side = max_image_side
        self.use_item_system = use_item_system
        self.memory = memory
        self.descriptions = descriptions
        self.references = references
        self.reference_side = reference_side

    def describe(self) -> Config:
        out: Config = {"mode": "large", "large": describe_chat_model(self.model), "max_image_side": self.max_image_side,
                       "item_system_text": self.use_item_system, "prompts": {"eval": prompts.EVAL_PROMPT_VERSION}}
        if self.descriptions or self.references:  # only then: "large" keeps the fingerprint it always had
            from slc.evals.fingerprint import memory_digest

            out["concepts"] = {"memory": memory_digest(self.memory), "descriptions": self.descriptions,
                               "references": self.references,
                               "reference_side": self.reference_side if self.references else None}
            out["prompts"]["memory"] = prompts.EVAL_MEMORY_PROMPT_VERSION
        return out

    def _known(self, item: Item) -> list[Any]:
        """The item's concepts the memory holds (in the item's order)."""
        if self.memory is None:
            return []
        return [self.memory.get(c) for c in dict.fromkeys(item.concepts) if self.memory.exists(c)]

    def _system(self, item: Item, known: list[Any]) -> str | None:
        if self.descriptions:
            import json

            facts = []
            for c in known:
                identity = c.identity
                fact = {"concept": f"<{c.name}>", "category": identity.category if identity else None,
                        "attributes": dict(identity.attributes) if identity else None,
                        "description": c.description, "tree": c.tree}
                facts.append(json.dumps({k: v for k, v in fact.items() if v}, ensure_ascii=False))
            return prompts.EVAL_MEMORY_FACTS.format(facts="\n".join(facts)) if facts else None
        return item.system if self.use_item_system else None

    def _reference_parts(self, known: list[Any]) -> list[dict[str, Any]]:
        from slc.agent.images import load_image
        from slc.agent.large_vlm import image_part

        parts: list[dict[str, Any]] = []
        for c in known:
            refs = c.images[: self.references]
            if refs:
                parts.append({"type": "text", "text": prompts.EVAL_REFERENCES_LABEL.format(token=f"<{c.name}>")})
                parts += [image_part(load_image(ref.path), self.reference_side, detail="low") for ref in refs]
        return parts

    def messages(self, item: Item) -> list[Any]:
        from langchain_core.messages import HumanMessage, SystemMessage

        from slc.agent.large_vlm import image_part
        from slc.agent.images import load_image

        known = self._known(item) if (self.descriptions or self.references) else []
        out: list[Any] = []
        system = self._system(item, known)
        if system:
            out.append(SystemMessage(content=system))
        text = render_prompt(item)
        parts: list[Any] = self._reference_parts(known) if self.references else []
        if not item.images and not parts:
            out.append(HumanMessage(content=text))
            return out
        if item.images and self.root is None:
            raise FileNotFoundError(f"item {item.id} has images but no dataset root was given")
        if item.images and parts:
            parts.append({"type": "text", "text": prompts.EVAL_QUESTION_PHOTO_LABEL})
        for rel in item.images:
            path = resolve_image(self.root, rel)  # type: ignore[arg-type]
            if path is None:
                raise FileNotFoundError(f"image {rel} of item {item.id} not found under {self.root}")
            parts.append(image_part(load_image(path), self.max_image_side))
        parts.append({"type": "text", "text": text})
        out.append(HumanMessage(content=parts))
        return out

    def __call__(self, item: Item) -> Prediction:
        from slc.agent.large_vlm import call_large_vlm

        messages = self.messages(item)
        start = time.perf_counter()
        with measure() as tally:
            reply = call_large_vlm(self.model, messages, config={"callbacks": [USAGE_CALLBACK]})
        text = str(reply.text) if hasattr(reply, "text") else str(reply.content)
        meta: dict[str, Any] = {"prompt_version": prompts.EVAL_PROMPT_VERSION}
        if self.descriptions or self.references:
            meta["concepts_known"] = [c.name for c in self._known(item)]
        return Prediction(reply=text, usage=tally.usage(time.perf_counter() - start), meta=meta)

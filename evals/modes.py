"""The registry of evaluation modes: a name -> a factory that builds a :class:`Predictor` for one run.

Why a registry of factories: modes need run context (dataset root, settings, seed) and some are expensive to
build (a model, a compiled graph), so the CLI builds only the modes asked for. Adding a mode is one decorated
function::

    @register_mode("slc-2rounds", "SLC with two loop-backs")
    def _slc2(ctx: ModeContext) -> Predictor:
        return GraphPredictor(ctx, name="slc-2rounds", reflect=True, reflection_rounds=2)

Registered: the trivial baselines; the large VLM alone with the item's own system text ("large"), with
memory's concept descriptions ("large-desc") or with memory's reference photos ("large-refs"); the small
VLM alone ("small"); the SLC graph without reflection ("slc-noreflect"), with ours ("slc": one batched
verification per round, settings.reflection_rounds loop-backs; "slc-r2": two), and the SLC paper's
("slc-paper": per-concept questions, one round, absent never re-checked, the paper's report lines; one
graph, configured by :class:`~slc.graphs.context.Context`). Every predictor describes what changes its
answers (``describe()``, see :mod:`slc.evals.fingerprint`), so results resume only for the same models,
prompts, bank and settings. ``slc eval --inject-errors`` flips the small VLM's claims for every mode that
uses it (:mod:`slc.evals.injection`).

Any other ``module:callable`` also works on the command line: the callable gets the :class:`ModeContext`
when it accepts one argument named ``ctx`` and returns a Predictor, else it is used as ``item -> reply``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, ConfigDict

from slc.agent import prompts
from slc.agent.settings import Settings
from slc.evals.baselines import TRIVIAL_BASELINES
from slc.evals.fingerprint import Config, describe_chat_model, describe_small_vlm, memory_digest
from slc.evals.predictors import ChatModelPredictor, FunctionPredictor, Predictor, TrivialPredictor
from slc.graphs.context import Context, ReflectionStyle, ReportStyle
from slc.graphs.services import ServiceFactory


class ModeContext(BaseModel):
    """What a mode factory may use to build its predictor.

    ``services`` builds the heavy collaborators (the eval tenant's concept memory, the small VLM, the large
    VLM) on first use, and every mode of the run SHARES them: "small", "slc-noreflect" and "slc" then use
    the very same small model and memory, and "large" the same endpoint, so the modes differ only in how
    they combine them. Tests and callers inject their own instances into the factory.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    root: Path | None = None
    seed: int = 0
    services: ServiceFactory

    @property
    def settings(self) -> Settings:
        return self.services.settings


ModeFactory = Callable[[ModeContext], Predictor]
MODES: dict[str, tuple[ModeFactory, str]] = {}


def register_mode(name: str, description: str) -> Callable[[ModeFactory], ModeFactory]:
    def deco(factory: ModeFactory) -> ModeFactory:
        MODES[name] = (factory, description)
        return factory

    return deco


for _b in TRIVIAL_BASELINES:
    register_mode(_b, f"trivial baseline: {_b}")(lambda ctx, _b=_b: TrivialPredictor(_b, seed=ctx.seed))


@register_mode("large", "the configured large VLM alone (settings.large), items' own system text included")
def _large(ctx: ModeContext) -> Predictor:
    return ChatModelPredictor(ctx.services.large_vlm(), ctx.root, name="large",
                              max_image_side=ctx.settings.large.max_image_side)


@register_mode("large-desc", "the large VLM alone, told memory's facts of the item's concepts (description, "
               "identity) as SLC's answerer gets them; not the item's own text")
def _large_desc(ctx: ModeContext) -> Predictor:
    return ChatModelPredictor(ctx.services.large_vlm(), ctx.root, name="large-desc",
                              max_image_side=ctx.settings.large.max_image_side, use_item_system=False,
                              memory=ctx.services.memory(), descriptions=True)


@register_mode("large-refs", "the large VLM alone with memory's reference photos of the item's concepts in "
               "context, labelled (settings.large.verify_references photos at reference_image_side); no text")
def _large_refs(ctx: ModeContext) -> Predictor:
    large = ctx.settings.large
    return ChatModelPredictor(ctx.services.large_vlm(), ctx.root, name="large-refs",
                              max_image_side=large.max_image_side, use_item_system=False,
                              memory=ctx.services.memory(), references=max(1, large.verify_references),
                              reference_side=large.reference_image_side)


@register_mode("small", "the small VLM alone (settings.small): Yes/No and option-letter likelihood, memory's "
               "concept facts")
def _small(ctx: ModeContext) -> Predictor:
    from slc.evals.small_mode import SmallVLMPredictor

    return SmallVLMPredictor(ctx.services.small_vlm(), ctx.services.memory(), ctx.root, name="small")


@register_mode("slc-noreflect", "SLC graph without reflection: recall -> small-VLM detection -> large-VLM answer")
def _slc_noreflect(ctx: ModeContext) -> Predictor:
    return GraphPredictor(ctx, name="slc-noreflect", reflect=False)


@register_mode("slc", "SLC graph with reflection (large-VLM verification, settings.reflection_rounds loop-backs)")
def _slc(ctx: ModeContext) -> Predictor:
    return GraphPredictor(ctx, name="slc", reflect=True, reflection_rounds=ctx.settings.reflection_rounds)


@register_mode("slc-r2", "SLC graph with reflection and up to 2 loop-backs (reflection_rounds=2)")
def _slc_r2(ctx: ModeContext) -> Predictor:
    return GraphPredictor(ctx, name="slc-r2", reflect=True, reflection_rounds=2)


@register_mode("slc-paper", "the SLC paper's collaboration: one large-VLM call per concept the small VLM marked "
               "present (its two yes/no questions), one round, absent never re-checked, its report lines: "
               "N + 1 large-VLM calls (+ 1 small-VLM detection; identity read at registration: the paper's N + 3)")
def _slc_paper(ctx: ModeContext) -> Predictor:
    return GraphPredictor(ctx, name="slc-paper", reflect=True, reflection_rounds=0, reflection_style="per-concept",
                          recheck_absent=False, report_style="paper")


class GraphPredictor:
    """Answers an item with one turn of the SLC graph (:func:`slc.graphs.sessions.ask`, no session history).

    The question is the same rendered prompt every mode gets; the image is the item's first image (the graph
    takes one photo per turn; ``meta.images_ignored`` says when an item had more). Concept knowledge comes
    from the eval tenant's memory (see slc.evals.concepts), NOT from the item's system text. Costs: large-VLM
    calls and tokens from the LangChain callbacks (cache hits excluded), the graph's own count in
    ``meta.graph_large_vlm_calls`` (cache hits included), small-VLM model passes from the instrumented model.
    How the SLC paper's N + 3 calls per visual question show here ("slc-paper"): N reflection calls + 1 answer
    call in calls/item, the small VLM's detection in small calls/item (its passes: one scoring pass, plus
    one generation for the locations when a concept is not absent), and no identity-extraction call: a
    concept's identity is read off its photos once at registration and kept in memory (0 per question).
    ``meta.injected``: the small VLM's claims flipped for this item (``slc eval --inject-errors`` only).
    """

    def __init__(self, ctx: ModeContext, name: str, reflect: bool = True, reflection_rounds: int | None = None,
                 graph: CompiledStateGraph | None = None, *, reflection_style: ReflectionStyle = "batched",
                 recheck_absent: bool = True, report_style: ReportStyle = "json") -> None:
        from slc.evals.predictors import instrument_small_vlm
        from slc.graphs.slc import compile_graph

        import warnings

        # The eval graph has no checkpointer on purpose (each item is a fresh turn); LangGraph warns on every
        # invoke that its default durability setting then does nothing.
        warnings.filterwarnings("ignore", message=r"`durability` has no effect", module=r"langgraph")
        self.ctx, self.name = ctx, name
        # built now, so a misconfigured model or store fails before the first item, not on every item
        ctx.services.memory()
        ctx.services.large_vlm()
        instrument_small_vlm(ctx.services.small_vlm())  # counts this run's small-VLM passes per item
        self.graph = graph if graph is not None else compile_graph(services=ctx.services)
        self.context = Context(reflect=reflect, reflection_rounds=reflection_rounds, reflection_style=reflection_style,
                               recheck_absent=recheck_absent, report_style=report_style)

    def describe(self) -> Config:
        """Both models, the memory's content, and the graph settings that change answers."""
        from slc.graphs.context import RunOptions

        s = self.ctx.settings
        run = RunOptions.resolve(self.context, s)
        graph: Config = {"reflect": run.reflect, "reflection_rounds": run.reflection_rounds if run.reflect else None,
                         "recall_threshold": s.recall_threshold, "recall_top_k": s.recall_top_k,
                         "image_encoder": s.image_encoder, "text_encoder": s.text_encoder,
                         "large_max_image_side": s.large.max_image_side}
        out: Config = {
            "mode": "graph",
            "large": describe_chat_model(self.ctx.services.large_vlm()),
            "small": describe_small_vlm(self.ctx.services.small_vlm()),
            "memory": memory_digest(self.ctx.services.memory()),
            "graph": graph,
            "prompts": {"eval": prompts.EVAL_PROMPT_VERSION, "verify": prompts.VERIFY_PROMPT_VERSION,
                        "reason": prompts.REASON_PROMPT_VERSION},
        }
        # the SLC paper's options, only where they differ from ours (older rows of our modes keep their key)
        paper = {"reflection_style": (run.reflection_style, "batched"), "recheck_absent": (run.recheck_absent, True),
                 "report_style": (run.report_style, "json")}
        graph.update({k: v for k, (v, ours) in paper.items() if v != ours})
        if run.reflection_style != "batched" or run.report_style != "json":
            out["prompts"]["paper"] = prompts.PAPER_PROMPT_VERSION
        return out

    def __call__(self, item: Any):
        import time

        from slc.evals.injection import injection_of, injection_scope
        from slc.evals.paths import resolve_image
        from slc.evals.predictors import Prediction, measure, render_prompt
        from slc.graphs.sessions import ask

        image = None
        if item.images:
            if self.ctx.root is None:
                raise FileNotFoundError(f"item {item.id} has images but no dataset root was given")
            image = resolve_image(self.ctx.root, item.images[0])
            if image is None:
                raise FileNotFoundError(f"image {item.images[0]} of item {item.id} not found under {self.ctx.root}")
        start = time.perf_counter()
        with measure() as tally, injection_scope(item.images[0] if item.images else item.id) as flipped:
            turn = ask(self.graph, render_prompt(item), image, context=self.context, settings=self.ctx.settings)
        meta = {
            "graph_large_vlm_calls": turn.large_vlm_calls,
            "flags": turn.flags,
            "degraded": turn.degraded,
            "final": [f"{f.concept}={f.present}{'' if f.verified else '?'}" for f in turn.final],
            "verdicts": [f"{v.concept}:{v.round}:{v.verdict}" for v in turn.verdicts],
            "structured": turn.answer.structured,
        }
        if len(item.images) > 1:
            meta["images_ignored"] = len(item.images) - 1
        if injection_of(self.ctx.services.small_vlm()) is not None:
            meta["injected"] = list(flipped)  # the small VLM's claims flipped on purpose (--inject-errors)
        return Prediction(reply=turn.answer.text, usage=tally.usage(time.perf_counter() - start), meta=meta)


def resolve_mode(spec: str, ctx: ModeContext | None = None) -> Predictor:
    """A registered mode name, or ``module:callable`` (a factory taking ``ctx`` or an ``item -> reply`` function)."""
    ctx = ctx or ModeContext(services=ServiceFactory())
    if spec in MODES:
        return MODES[spec][0](ctx)
    if ":" not in spec:
        raise KeyError(f"unknown mode {spec!r}; registered: {', '.join(MODES)}; or pass module:callable")
    module_name, attr = spec.split(":", 1)
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    params = list(inspect.signature(obj).parameters) if callable(obj) else []
    if params == ["ctx"]:
        built = obj(ctx)
        if not hasattr(built, "name"):
            built = FunctionPredictor(built, name=spec)
        return built
    if hasattr(obj, "name") and callable(obj):
        return obj
    return FunctionPredictor(obj, name=spec)

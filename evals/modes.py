"""The registry of evaluation modes: a name -> a factory that builds a :class:`Predictor` for one run.

Why a registry of factories: modes need run context (dataset root, settings, seed) and some are expensive to
build (a model, a compiled graph), so the CLI builds only the modes asked for. Adding a mode is one decorated
function::

    @register_mode("slc-2rounds", "SLC with two loop-backs")
    def _slc2(ctx: ModeContext) -> Predictor:
        return GraphPredictor(ctx, name="slc-2rounds", reflect=True, reflection_rounds=2)

Registered: the trivial baselines, "large", "small", "slc-noreflect", "slc" (the four compared modes).

Any other ``module:callable`` also works on the command line: the callable gets the :class:`ModeContext`
when it accepts one argument named ``ctx`` and returns a Predictor, else it is used as ``item -> reply``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from slc.agent.settings import Settings, get_settings
from slc.evals.metrics import TRIVIAL_BASELINES
from slc.evals.predictors import ChatModelPredictor, FunctionPredictor, Predictor, TrivialPredictor


class ModeContext(BaseModel):
    """What a mode factory may use to build its predictor.

    The heavy collaborators (concept memory of the eval tenant, the small VLM, the large VLM) are built
    lazily from ``settings`` on first use and SHARED by every mode of the run: "small", "slc-noreflect" and
    "slc" then use the very same small model and memory, and "large" the same endpoint, so the modes differ
    only in how they combine them. Tests and callers may pass their own instances.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    root: Path | None = None
    seed: int = 0
    settings: Settings
    memory: Any = None
    small_vlm: Any = None
    large_vlm: Any = None

    def get_memory(self) -> Any:
        if self.memory is None:
            from slc.memory import ConceptMemory

            self.memory = ConceptMemory.from_settings(self.settings)
        return self.memory

    def get_small_vlm(self) -> Any:
        if self.small_vlm is None:
            from slc.agent.small_vlm import SmallVLM

            self.small_vlm = SmallVLM.from_settings(self.settings)
        return self.small_vlm

    def get_large_vlm(self) -> Any:
        if self.large_vlm is None:
            from slc.agent.large_vlm import build_large_vlm

            self.large_vlm = build_large_vlm(self.settings)
        return self.large_vlm


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
    return ChatModelPredictor(ctx.get_large_vlm(), ctx.root, name="large",
                              max_image_side=ctx.settings.large.max_image_side)


@register_mode("small", "the small VLM alone (settings.small): Yes/No and option-letter likelihood, memory's "
               "concept facts")
def _small(ctx: ModeContext) -> Predictor:
    from slc.evals.small_mode import SmallVLMPredictor

    return SmallVLMPredictor(ctx.get_small_vlm(), ctx.get_memory(), ctx.root, name="small")


@register_mode("slc-noreflect", "SLC graph without reflection: recall -> small-VLM detection -> large-VLM answer")
def _slc_noreflect(ctx: ModeContext) -> Predictor:
    return GraphPredictor(ctx, name="slc-noreflect", reflect=False)


@register_mode("slc", "SLC graph with reflection (large-VLM verification, settings.reflection_rounds loop-backs)")
def _slc(ctx: ModeContext) -> Predictor:
    return GraphPredictor(ctx, name="slc", reflect=True, reflection_rounds=ctx.settings.reflection_rounds)


class GraphPredictor:
    """Answers an item with one turn of the SLC graph (:func:`slc.graphs.sessions.ask`, no session history).

    The question is the same rendered prompt every mode gets; the image is the item's first image (the graph
    takes one photo per turn; ``meta.images_ignored`` says when an item had more). Concept knowledge comes
    from the eval tenant's memory (see slc.evals.concepts), NOT from the item's system text. Costs: large-VLM
    calls and tokens from the LangChain callbacks (cache hits excluded), the graph's own count in
    ``meta.graph_large_vlm_calls`` (cache hits included), small-VLM model passes from the instrumented model.
    """

    def __init__(self, ctx: ModeContext, name: str, reflect: bool = True, reflection_rounds: int | None = None,
                 graph: Any = None) -> None:
        from slc.evals.predictors import instrument_small_vlm
        from slc.graphs.context import Services
        from slc.graphs.slc import compile_graph

        import warnings

        # The eval graph has no checkpointer on purpose (each item is a fresh turn); LangGraph warns on every
        # invoke that its default durability setting then does nothing.
        warnings.filterwarnings("ignore", message=r"`durability` has no effect", module=r"langgraph")
        self.ctx, self.name = ctx, name
        self.reflect, self.rounds = reflect, reflection_rounds
        self.graph = graph if graph is not None else compile_graph()
        self.services = Services(memory=ctx.get_memory(), small_vlm=instrument_small_vlm(ctx.get_small_vlm()),
                                 large_vlm=ctx.get_large_vlm())

    def context(self) -> Any:
        from slc.graphs.context import Context

        s = self.ctx.settings
        return Context(tenant=s.tenant, settings=s, services=self.services, reflect=self.reflect,
                       reflection_rounds=self.rounds)

    def __call__(self, item: Any):
        import time

        from slc.evals.datasets import resolve_image
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
        with measure() as tally:
            turn = ask(self.graph, render_prompt(item), image, context=self.context())
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
        return Prediction(reply=turn.answer.text, usage=tally.usage(time.perf_counter() - start), meta=meta)


def resolve_mode(spec: str, ctx: ModeContext | None = None) -> Predictor:
    """A registered mode name, or ``module:callable`` (a factory taking ``ctx`` or an ``item -> reply`` function)."""
    ctx = ctx or ModeContext(settings=get_settings())
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

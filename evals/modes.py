"""The registry of evaluation modes: a name -> a factory that builds a :class:`Predictor` for one run.

Why a registry of factories: modes need run context (dataset root, settings, seed) and some are expensive to
build (a model, a compiled graph), so the CLI builds only the modes asked for. Adding a mode is one decorated
function::

    @register_mode("slc-2rounds", "SLC with two loop-backs")
    def _slc2(ctx: ModeContext) -> Predictor:
        return GraphPredictor(ctx, name="slc-2rounds", reflect=True, reflection_rounds=2)

Registered: the trivial baselines, "large", "small", "slc-noreflect", "slc" (the four compared modes).
Every predictor describes what changes its answers (``describe()``, see :mod:`slc.evals.fingerprint`), so
results resume only for the same models, prompts, bank and settings.

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
from slc.graphs.context import Context
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


class GraphPredictor:
    """Answers an item with one turn of the SLC graph (:func:`slc.graphs.sessions.ask`, no session history).

    The question is the same rendered prompt every mode gets; the image is the item's first image (the graph
    takes one photo per turn; ``meta.images_ignored`` says when an item had more). Concept knowledge comes
    from the eval tenant's memory (see slc.evals.concepts), NOT from the item's system text. Costs: large-VLM
    calls and tokens from the LangChain callbacks (cache hits excluded), the graph's own count in
    ``meta.graph_large_vlm_calls`` (cache hits included), small-VLM model passes from the instrumented model.
    """

    def __init__(self, ctx: ModeContext, name: str, reflect: bool = True, reflection_rounds: int | None = None,
                 graph: CompiledStateGraph | None = None) -> None:
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
        self.context = Context(reflect=reflect, reflection_rounds=reflection_rounds)

    def describe(self) -> Config:
        """Both models, the memory's content, and the graph settings that change answers."""
        from slc.graphs.context import RunOptions

        s = self.ctx.settings
        run = RunOptions.resolve(self.context, s)
        return {
            "mode": "graph",
            "large": describe_chat_model(self.ctx.services.large_vlm()),
            "small": describe_small_vlm(self.ctx.services.small_vlm()),
            "memory": memory_digest(self.ctx.services.memory()),
            "graph": {"reflect": run.reflect, "reflection_rounds": run.reflection_rounds if run.reflect else None,
                      "recall_threshold": s.recall_threshold, "recall_top_k": s.recall_top_k,
                      "image_encoder": s.image_encoder, "text_encoder": s.text_encoder,
                      "large_max_image_side": s.large.max_image_side},
            "prompts": {"eval": prompts.EVAL_PROMPT_VERSION, "verify": prompts.VERIFY_PROMPT_VERSION,
                        "reason": prompts.REASON_PROMPT_VERSION},
        }

    def __call__(self, item: Any):
        import time

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
        with measure() as tally:
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

"""The registry of evaluation modes: a name -> a factory that builds a :class:`Predictor` for one run.

Why a registry of factories: modes need run context (dataset root, settings, seed) and some are expensive to
build (a model, a compiled graph), so the CLI builds only the modes asked for. Adding the SLC modes once the
graph lands is one decorated function in the graph's package or here::

    @register_mode("slc", "SLC with reflection (graph)")
    def _slc(ctx: ModeContext) -> Predictor:
        from slc.graphs.slc import graph
        return GraphPredictor(graph, ctx, name="slc", context={"reflection_rounds": ctx.settings.reflection_rounds})

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
    """What a mode factory may use to build its predictor."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    root: Path | None = None
    seed: int = 0
    settings: Settings


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
    from slc.agent.large_vlm import build_large_vlm

    return ChatModelPredictor(build_large_vlm(ctx.settings), ctx.root, name="large",
                              max_image_side=ctx.settings.large.max_image_side)


class GraphPredictor:
    """Runs a compiled LangGraph (the SLC answer graph) on an item; reply = the state's ``answer`` field.

    ``build_input(item, root) -> dict`` maps an item to the graph's input; the default sends the rendered
    question and the image paths. Model calls and tokens are measured through LangChain callbacks.
    """

    def __init__(self, graph: Any, ctx: ModeContext, name: str, context: dict[str, Any] | None = None,
                 build_input: Callable[[Any, Path | None], dict[str, Any]] | None = None,
                 answer_key: str = "answer") -> None:
        self.graph, self.ctx, self.name = graph, ctx, name
        self.context = context
        self.build_input = build_input or _default_graph_input
        self.answer_key = answer_key

    def __call__(self, item: Any):
        import time

        from slc.evals.predictors import Prediction, UsageCallback, measure

        start = time.perf_counter()
        config: dict[str, Any] = {"callbacks": [UsageCallback()], "tags": [f"eval:{self.name}"]}
        with measure() as tally:
            kwargs = {"context": self.context} if self.context is not None else {}
            state = self.graph.invoke(self.build_input(item, self.ctx.root), config=config, **kwargs)
        answer = state.get(self.answer_key) if isinstance(state, dict) else getattr(state, self.answer_key, None)
        reply = getattr(answer, "text", answer)
        return Prediction(reply=None if reply is None else str(reply), usage=tally.usage(time.perf_counter() - start))


def _default_graph_input(item: Any, root: Path | None) -> dict[str, Any]:
    from slc.evals.datasets import resolve_image
    from slc.evals.predictors import render_prompt

    images = [str(resolve_image(root, p) or p) for p in item.images] if root is not None else list(item.images)
    return {"question": render_prompt(item), "images": images}


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

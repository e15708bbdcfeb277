"""One graph turn run node by node, with an event per node (for the CLI, the demo and a JSONL trace).

Why not ``slc.graphs.sessions.ask``: the CLI must show what happened at EACH node (recall hits,
detections, verdicts, loop-backs) as it happens and keep a local trace file without LangSmith. This
streams the same graph with LangGraph's ``stream_mode=["updates", "values"]``, builds the same
``TurnResult`` as ``ask`` (plus every detection of every round), and hands each node's update, summarized
to plain JSON, to ``on_event``. A JSONL trace (:class:`JsonlTrace`) is one such ``on_event``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from langgraph.graph.state import CompiledStateGraph

from slc.agent.detection import Detection
from slc.agent.images import ImageSource
from slc.agent.settings import Settings
from slc.graphs.context import Context
from slc.graphs.sessions import TURN_DURABILITY, TurnResult, turn_input, turn_result
from slc.graphs.tracing import run_config


@dataclass
class Turn:
    """A TurnResult plus what the per-node view needs."""

    result: TurnResult
    detections: list[Detection]
    events: list[dict[str, Any]] = field(default_factory=list)
    loop_backs: int = 0
    seconds: float = 0.0


def summarize(node: str, update: dict[str, Any]) -> dict[str, Any]:
    """The plain-JSON gist of one node's update (never image bytes; images are hashes already)."""
    out: dict[str, Any] = {"node": node}
    if node == "recall":
        out["candidates"] = [{"concept": c.name, "matched_by": list(c.matched_by), "score": round(c.score, 3)}
                             for c in update.get("candidates", [])]
        out["image"] = update.get("image")
    elif node == "personalize":
        rnd = update.get("round", 0)
        out["round"] = rnd
        out["detections"] = [{"concept": d.concept, "status": d.status, "confidence": round(d.confidence, 3),
                              "location": d.location_absolute, "source": d.status_source}
                             for d in update.get("detections", []) if d.round == rnd]
    elif node == "reflect":
        verdicts = update.get("verdicts", [])
        rnd = max((v.round for v in verdicts), default=0)
        out["round"] = rnd
        out["verdicts"] = [{"concept": v.concept, "claim": v.claim, "verdict": v.verdict, "feedback": v.feedback[:200]}
                           for v in verdicts if v.round == rnd]
        out["loop_back"] = list(update.get("pending", []))
        out["flags"] = list(update.get("flags", []))
        out["large_vlm_calls"] = update.get("large_vlm_calls")
    elif node == "reason":
        ans = update.get("answer")
        out["answer"] = ans.text if ans is not None else None
        out["structured"] = ans.structured if ans is not None else None
        out["degraded"] = update.get("degraded", False)
        out["final"] = [{"concept": f.concept, "present": f.present, "verified": f.verified} for f in update.get("final", [])]
        out["flags"] = list(update.get("flags", []))
        out["large_vlm_calls"] = update.get("large_vlm_calls")
    return out


class JsonlTrace:
    """Appends one JSON object per node event to a file (a local trace that needs no server)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, event: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event, default=str) + "\n")


def run_turn(
    graph: CompiledStateGraph,
    question: str,
    image: ImageSource | None = None,
    *,
    thread_id: str | None = None,
    context: Context | None = None,
    settings: Settings | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> Turn:
    """Run one turn of the (checkpointed) graph, calling ``on_event`` after every node.

    ``image`` and ``settings`` as in :func:`slc.graphs.sessions.ask`.
    """
    inp = turn_input(question, image)
    cfg = run_config(thread_id, context, settings, visual=image is not None)
    t0 = time.perf_counter()
    events: list[dict[str, Any]] = []
    values: dict[str, Any] = {}
    loop_backs = 0
    for mode, chunk in graph.stream(inp, config=cfg, context=context or Context(), stream_mode=["updates", "values"],
                                    durability=TURN_DURABILITY):
        if mode == "values":
            values = chunk
            continue
        for node, update in chunk.items():
            if not isinstance(update, dict):
                continue
            ev = summarize(node, update)
            ev.update({"ts": round(time.time(), 3), "thread_id": thread_id})
            if node == "reflect" and ev.get("loop_back"):
                loop_backs += 1
            events.append(ev)
            if on_event is not None:
                on_event(ev)
    return Turn(result=turn_result(values), detections=list(values.get("detections", [])), events=events,
                loop_backs=loop_backs, seconds=time.perf_counter() - t0)


__all__ = ["JsonlTrace", "Turn", "run_turn", "summarize"]

"""Graph overhead per turn of the SLC graph (model time excluded) and large-VLM calls per visual question.

What is measured (all in one run, same process, same disk):
1. Per-turn wall time of the SLC graph on a 200-turn session with SqliteSaver on a file, minus the time
   spent inside the models (fake large VLM, no-op small VLM: both timed and subtracted). What is left is
   the graph's own cost: LangGraph scheduling + checkpoint writes, our nodes' state handling, prompt
   building, the query photo's decode and JPEG data-URL encode (a 64x48 photo), and LangChain's
   chat-model call path. Median, p95, turn 1 vs turn 200, checkpoint DB size after 200 turns; the same
   through ``ainvoke`` (the async nodes, AsyncSqliteSaver), for comparison.
2. The floor: a bare 4-node StateGraph (messages + a counter; two nodes call the same fake chat model)
   with SqliteSaver on a file, 200 turns on one thread, in the same run.
3. Large-VLM calls per visual question for 1, 3 and 8 present concepts (counted at the fake model):
   ours with every claim confirmed, and with one claim disputed once (one loop-back), vs. SLC's N+3
   model calls (identity extraction + small detection + N reflections + answer; N+2 of them large).

Fake models (LangChain BaseChatModel subclass, no network) stand in for the VLMs on purpose: this is
the graph's overhead, not model speed. Run: ``python benchmarks/graph_overhead.py [--turns 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from PIL import Image

from slc.agent.detection import ConceptQuery, Detection
from slc.agent.settings import Settings
from slc.graphs.context import Context
from slc.graphs.services import ServiceFactory
from slc.graphs.sessions import TURN_DURABILITY, open_async_checkpointer, open_checkpointer, turn_input
from slc.graphs.slc import compile_graph
from slc.graphs.tracing import run_config
from slc.memory.images import ImageStore
from slc.memory.types import Concept, Identity, RecallHit


class TimedFakeLarge(BaseChatModel):
    """Answers verify prompts with 'agree' for every claim (or 'disagree' for names in ``dispute`` on
    round 0) and answer prompts with a fixed JSON answer; counts calls and its own time."""

    calls: int = 0
    seconds: float = 0.0
    dispute: set = set()
    seen_disputes: set = set()

    @property
    def _llm_type(self) -> str:
        return "timed-fake"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> ChatResult:
        t0 = time.perf_counter()
        self.calls += 1
        last = messages[-1].content
        text = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last if isinstance(p, dict))
        if '"verdicts"' in text:
            verdicts = []
            for cid, name in re.findall(r'"id": "(c\d+)",\s*"concept": "([^"]+)"', text):
                dispute = name in self.dispute and name not in self.seen_disputes
                if dispute:
                    self.seen_disputes.add(name)
                verdicts.append({"id": cid, "verdict": "disagree" if dispute else "agree", "feedback": "ok"})
            out = json.dumps({"verdicts": verdicts})
        else:
            out = json.dumps({"answer": "Yes.", "concepts_used": []})
        res = ChatResult(generations=[ChatGeneration(message=AIMessage(content=out))])
        self.seconds += time.perf_counter() - t0
        return res


class NoOpSmallVLM:
    """Says every queried concept is present; counts its own time."""

    bank = None

    def __init__(self) -> None:
        self.seconds = 0.0

    def detect(self, image: Any, concepts: list[ConceptQuery], round: int = 0) -> list[Detection]:
        t0 = time.perf_counter()
        out = [Detection(concept=q.name, status="present", confidence=0.9, location_absolute="center", round=round)
               for q in concepts]
        self.seconds += time.perf_counter() - t0
        return out


class StaticMemory:
    """Recalls a fixed list of concepts as image neighbours; counts its own time."""

    def __init__(self, concepts: list[Concept]) -> None:
        self.concepts = concepts
        self.seconds = 0.0

    def recall(self, text: str | None = None, image: Any = None) -> list[RecallHit]:
        t0 = time.perf_counter()
        hits = [RecallHit(concept=c, score=0.9, matched_by=["image"]) for c in self.concepts] if image is not None else []
        self.seconds += time.perf_counter() - t0
        return hits

    def list(self) -> list[Concept]:
        return self.concepts


def concepts(n: int) -> list[Concept]:
    return [Concept(id=f"id{i}", tenant="bench", name=f"c{i}", description=f"concept number {i}",
                    identity=Identity(category="dog", attributes={"fur": "golden"})) for i in range(n)]


@dataclass
class Fakes:
    """The timed stand-ins of one run, and a service factory over them."""

    memory: StaticMemory
    small: NoOpSmallVLM
    large: TimedFakeLarge
    store: ImageStore

    def services(self, settings: Settings) -> ServiceFactory:
        return ServiceFactory(settings, memory=self.memory, small_vlm=self.small, large_vlm=self.large,
                              image_store=self.store)

    def seconds(self) -> float:
        return self.large.seconds + self.small.seconds + self.memory.seconds


# -- the floor: a bare 4-node StateGraph ---------------------------------------------------------------------


@dataclass
class BareState:
    messages: Annotated[list[AnyMessage], __import__("langgraph.graph", fromlist=["add_messages"]).add_messages] = field(
        default_factory=list)
    step: int = 0


def bare_graph(checkpointer: Any, model: TimedFakeLarge) -> Any:
    from langgraph.graph import END, START, StateGraph

    def a(s: BareState) -> dict:
        return {"step": 1}

    def b(s: BareState) -> dict:
        model.invoke([HumanMessage('{"verdicts"}')])
        return {"step": 2}

    def c(s: BareState) -> dict:
        return {"step": 3}

    def d(s: BareState) -> dict:
        r = model.invoke([HumanMessage("answer")])
        return {"messages": [HumanMessage("q"), AIMessage(r.content)], "step": 4}

    g = StateGraph(BareState)
    for name, fn in (("a", a), ("b", b), ("c", c), ("d", d)):
        g.add_node(name, fn)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_edge("c", "d")
    g.add_edge("d", END)
    return g.compile(checkpointer=checkpointer)


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(xs, p))


def _session_setup(tmp: Path) -> tuple[Settings, Fakes, dict[str, Any], Context]:
    settings = Settings(data_dir=tmp / "slc", tenant="bench")
    fakes = Fakes(StaticMemory(concepts(1)), NoOpSmallVLM(), TimedFakeLarge(), ImageStore(tmp / "images"))
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "RGB")
    sha = fakes.store.put(photo).sha256  # stored once, sent by hash every turn
    return settings, fakes, {"question": "Is <c0> in this photo?", "image": sha}, Context()


def run_session(turns: int, tmp: Path, durability: str = TURN_DURABILITY) -> dict[str, Any]:
    settings, fakes, inp, ctx = _session_setup(tmp)
    times, overhead = [], []
    with open_checkpointer(settings) as saver:
        g = compile_graph(checkpointer=saver, services=fakes.services(settings))
        cfg = run_config("bench-thread", ctx, settings, visual=True)
        for _ in range(turns):
            m0 = fakes.seconds()
            t0 = time.perf_counter()
            out = g.invoke(inp, config=cfg, context=ctx, durability=durability)
            dt = time.perf_counter() - t0
            times.append(dt)
            overhead.append(dt - (fakes.seconds() - m0))
            assert out["answer"].text == "Yes."
    size = settings.sessions_path.stat().st_size
    return {"times": times, "overhead": overhead, "db_bytes": size, "large_calls": fakes.large.calls}


def run_session_async(turns: int, tmp: Path) -> dict[str, Any]:
    """:func:`run_session` through ``ainvoke`` (async nodes; blocking work in worker threads)."""
    settings, fakes, inp, ctx = _session_setup(tmp)

    async def run() -> dict[str, Any]:
        times, overhead = [], []
        async with open_async_checkpointer(settings) as saver:
            g = compile_graph(checkpointer=saver, services=fakes.services(settings))
            cfg = run_config("bench-thread", ctx, settings, visual=True)
            for _ in range(turns):
                m0 = fakes.seconds()
                t0 = time.perf_counter()
                out = await g.ainvoke(inp, config=cfg, context=ctx, durability=TURN_DURABILITY)
                dt = time.perf_counter() - t0
                times.append(dt)
                overhead.append(dt - (fakes.seconds() - m0))
                assert out["answer"].text == "Yes."
        return {"times": times, "overhead": overhead}

    return asyncio.run(run())


def run_bare(turns: int, tmp: Path, tuned: bool, durability: str = "async") -> dict[str, Any]:
    """tuned=False: SqliteSaver.from_conn_string defaults (fsync per commit); True: our WAL/NORMAL pragmas."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    model = TimedFakeLarge()
    times, overhead = [], []
    settings = Settings(data_dir=tmp / f"bare-{'tuned' if tuned else 'default'}-{durability}")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    cm = open_checkpointer(settings) if tuned else SqliteSaver.from_conn_string(str(settings.sessions_path))
    with cm as saver:
        g = bare_graph(saver, model)
        cfg = {"configurable": {"thread_id": "bare"}}
        for _ in range(turns):
            m0 = model.seconds
            t0 = time.perf_counter()
            g.invoke({"step": 0}, config=cfg, durability=durability)
            dt = time.perf_counter() - t0
            times.append(dt)
            overhead.append(dt - (model.seconds - m0))
    return {"times": times, "overhead": overhead, "db_bytes": settings.sessions_path.stat().st_size}


def calls_per_question(n: int, disputed: int, tmp: Path) -> int:
    large = TimedFakeLarge(dispute={f"c{i}" for i in range(disputed)})
    fakes = Fakes(StaticMemory(concepts(n)), NoOpSmallVLM(), large, ImageStore(tmp / f"calls-{n}-{disputed}"))
    graph = compile_graph(services=fakes.services(Settings(data_dir=tmp / "calls")))
    photo = Image.new("RGB", (64, 48), (10, 200, 30))
    out = graph.invoke(turn_input("Who is in this photo?", photo), context=Context(reflection_rounds=1))
    assert out["large_vlm_calls"] == large.calls, (out["large_vlm_calls"], large.calls)
    return large.calls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--turns", type=int, default=200)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        run_session(5, tmp / "warm")  # imports, first-call caches
        run_session_async(5, tmp / "warm-async")
        run_bare(5, tmp / "warm", tuned=True)
        ours = run_session(args.turns, tmp / "ours")  # the product's policy: one checkpoint per turn
        ours_nodes = run_session(args.turns, tmp / "ours-async", durability="async")
        ours_ainvoke = run_session_async(args.turns, tmp / "ours-ainvoke")
        bare = run_bare(args.turns, tmp / "bare", tuned=True, durability=TURN_DURABILITY)
        bare_nodes = run_bare(args.turns, tmp / "bare", tuned=True, durability="async")
        bare_default = run_bare(args.turns, tmp / "bare", tuned=False, durability="async")
        calls = {(n, k): calls_per_question(n, k, tmp) for n in (1, 3, 8) for k in (0, 1)}

    ms = lambda s: s * 1000.0  # noqa: E731
    o, b = ours["overhead"], bare["overhead"]
    print(f"SLC graph overhead per turn (model time excluded), SqliteSaver on a file, {args.turns} turns, one thread")
    print(f"  ours : median {ms(statistics.median(o)):.2f} ms   p95 {ms(pct(o, 95)):.2f} ms   (target < 5 ms; "
          f"durability={TURN_DURABILITY!r}, one checkpoint per turn, the default of slc.graphs.sessions)")
    print(f"  floor: median {ms(statistics.median(b)):.2f} ms   p95 {ms(pct(b, 95)):.2f} ms   (bare 4-node StateGraph, same SQLite pragmas and policy)")
    on, bn = ours_nodes["overhead"], bare_nodes["overhead"]
    print(f"  ours, durability='async' (checkpoint after every node): median {ms(statistics.median(on)):.2f} ms   "
          f"p95 {ms(pct(on, 95)):.2f} ms   DB {ours_nodes['db_bytes'] / 1e6:.2f} MB; its floor median {ms(statistics.median(bn)):.2f} ms")
    oa = ours_ainvoke["overhead"]
    print(f"  ours through ainvoke (async nodes, AsyncSqliteSaver): median {ms(statistics.median(oa)):.2f} ms   "
          f"p95 {ms(pct(oa, 95)):.2f} ms")
    bd = bare_default["overhead"]
    print(f"  floor, SqliteSaver.from_conn_string defaults (fsync per commit, after every node): median {ms(statistics.median(bd)):.2f} ms")
    print(f"  ratio ours/floor (median): {statistics.median(o) / statistics.median(b):.2f}x")
    first10, last10 = o[:10], o[-10:]
    print(f"  growth: turns 1-10 median {ms(statistics.median(first10)):.2f} ms, turns {args.turns - 9}-{args.turns} "
          f"median {ms(statistics.median(last10)):.2f} ms (turn 1 {ms(o[0]):.2f} ms, turn {args.turns} {ms(o[-1]):.2f} ms)")
    bf, bl = bare["overhead"][:10], bare["overhead"][-10:]
    print(f"  floor growth: turns 1-10 median {ms(statistics.median(bf)):.2f} ms, last 10 median {ms(statistics.median(bl)):.2f} ms")
    print(f"  checkpoint DB after {args.turns} turns: ours {ours['db_bytes'] / 1e6:.2f} MB, floor {bare['db_bytes'] / 1e6:.2f} MB")
    print(f"  wall per turn incl. fake models: ours median {ms(statistics.median(ours['times'])):.2f} ms")
    print()
    print("Large-VLM calls per visual question (counted at the model); SLC = N+3 model calls, N+2 of them large")
    print(f"  {'N present':>9} | {'ours, all confirmed':>19} | {'ours, 1 disputed once':>21} | {'SLC large':>9} | {'SLC total':>9}")
    for n in (1, 3, 8):
        print(f"  {n:>9} | {calls[(n, 0)]:>19} | {calls[(n, 1)]:>21} | {n + 2:>9} | {n + 3:>9}")
    print("  (ours in total adds 1 small-VLM pass per round; identity extraction happens once at registration)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Graph overhead per turn of the SLC graph (model time excluded) and large-VLM calls per visual question.

What is measured (all in one run, same process, same disk; ours and the floor turn by turn, interleaved,
so both see the same machine load):
1. Per-turn wall time of the SLC graph AS BUILT (the GuardedGraph: tenant, thread lock and owner check,
   photo admission, private tracing) on a 200-turn session with SqliteSaver on a
   file and one checkpoint per turn, minus the time spent inside the models (fake large VLM, no-op small
   VLM, static memory: timed and subtracted). What is left is the graph's own cost: the guard, LangGraph
   scheduling + checkpoint writes, our nodes' state handling, prompt building, the query photo's decode
   and JPEG data-URL encode (a 64x48 photo), and LangChain's chat-model call path.
2. The fair floor: a bare 4-node StateGraph (messages + a counter; two nodes call the same fake chat
   model) with the SAME checkpointer (SqliteSaver on a file, our pragmas), the same checkpoint policy
   (durability "exit"), the same retention (the newest ``checkpoints_per_thread`` checkpoints kept, pruned
   after each turn with the same helper) and its history trimmed the same way as ours (the last
   ``max_history_messages`` messages kept, older ones removed with RemoveMessage). Ours also writes each
   turn to its transcript store (SqliteStore, as ``open_graph`` compiles it); the floor has none. (An earlier floor never trimmed: it grew to
   15-20 ms per turn and 8.96 MB, which is why ours once looked cheaper than the floor.)
3. Growth: turns 1-10 against the last 10, and the checkpoint DB size after the session, of both.
4. Large-VLM calls per visual question for 1, 3 and 8 present concepts (counted at the fake model):
   ours with every claim confirmed, and with one claim disputed once (one loop-back), vs. SLC's N+3
   model calls (identity extraction + small detection + N reflections + answer; N+2 of them large).
Also, for comparison: ours through ``ainvoke`` (async nodes, AsyncSqliteSaver) and with a checkpoint
after every node (durability "async").

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
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, RemoveMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from PIL import Image

from slc.agent.detection import ConceptQuery, Detection
from slc.agent.settings import Settings
from slc.graphs.context import Context
from slc.graphs.services import ServiceFactory
from slc.graphs.sessions import TURN_DURABILITY, open_async_checkpointer, open_checkpointer, open_store, turn_input
from slc.graphs.threads import prune_thread
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


class _NoReferences:
    uses_references = False


class NoOpSmallVLM:
    """Says every queried concept is present; counts its own time."""

    bank = None
    protocol = _NoReferences()

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


def bare_graph(checkpointer: Any, model: TimedFakeLarge, keep: int) -> Any:
    """The floor: 4 nodes, the large model called twice, the turn's two messages added and the history
    trimmed to the last ``keep`` messages exactly as the SLC graph's reason node trims it."""
    from langgraph.graph import END, START, StateGraph

    def a(s: BareState) -> dict:
        return {"step": 1}

    def b(s: BareState) -> dict:
        model.invoke([HumanMessage('{"verdicts"}')])
        return {"step": 2}

    def c(s: BareState) -> dict:
        return {"step": 3}

    def d(s: BareState) -> dict:
        r = model.invoke([*s.messages[-keep:], HumanMessage("answer")])
        turn = [HumanMessage("q"), AIMessage(r.content)]
        old = [m for m in s.messages if m.id]
        drop = [RemoveMessage(id=m.id) for m in old[: max(len(old) - max(keep - len(turn), 0), 0)]]
        return {"messages": [*drop, *turn], "step": 4}

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


def db_bytes(path: Path) -> int:
    """The SQLite file and its write-ahead log (where recent commits live until a WAL checkpoint)."""
    return sum(f.stat().st_size for f in (path, path.with_name(path.name + "-wal")) if f.exists())


def run_pair(turns: int, tmp: Path, durability: str = TURN_DURABILITY) -> dict[str, Any]:
    """Ours (as built) and the fair floor, ``turns`` turns each on one thread, interleaved turn by turn."""
    settings, fakes, inp, ctx = _session_setup(tmp)
    model = TimedFakeLarge()
    floor_settings = Settings(data_dir=tmp / "floor")
    out: dict[str, Any] = {"ours": [], "floor": [], "ours_wall": []}
    with open_checkpointer(settings) as saver, open_store(settings) as store, \
            open_checkpointer(floor_settings) as floor_saver:
        ours = compile_graph(checkpointer=saver, store=store, services=fakes.services(settings))  # as open_graph
        floor = bare_graph(floor_saver, model, settings.max_history_messages)
        cfg = run_config("bench-thread", ctx, settings, visual=True)
        floor_cfg = {"configurable": {"thread_id": "floor"}}
        for i in range(turns):
            for name in (("ours", "floor") if i % 2 else ("floor", "ours")):
                if name == "ours":
                    m0 = fakes.seconds()
                    t0 = time.perf_counter()
                    res = ours.invoke(inp, config=cfg, context=ctx, durability=durability)
                    dt = time.perf_counter() - t0
                    out["ours"].append(dt - (fakes.seconds() - m0))
                    out["ours_wall"].append(dt)
                    assert res["answer"].text == "Yes."
                else:
                    m0 = model.seconds
                    t0 = time.perf_counter()
                    res = floor.invoke({"step": 0}, config=floor_cfg, durability=durability)
                    prune_thread(floor_saver, "floor", settings.checkpoints_per_thread)  # the same retention
                    out["floor"].append(time.perf_counter() - t0 - (model.seconds - m0))
                    assert len(res["messages"]) <= settings.max_history_messages
        out["ours_messages"] = len(ours.get_state(cfg).values["messages"])
    out["ours_db"], out["floor_db"] = db_bytes(settings.sessions_path), db_bytes(floor_settings.sessions_path)
    return out


def run_session_async(turns: int, tmp: Path) -> list[float]:
    """Ours through ``ainvoke`` (async nodes; blocking work in worker threads): per-turn overhead."""
    settings, fakes, inp, ctx = _session_setup(tmp)

    async def run() -> list[float]:
        overhead = []
        async with open_async_checkpointer(settings) as saver:
            g = compile_graph(checkpointer=saver, services=fakes.services(settings))
            cfg = run_config("bench-thread", ctx, settings, visual=True)
            for _ in range(turns):
                m0 = fakes.seconds()
                t0 = time.perf_counter()
                out = await g.ainvoke(inp, config=cfg, context=ctx, durability=TURN_DURABILITY)
                overhead.append(time.perf_counter() - t0 - (fakes.seconds() - m0))
                assert out["answer"].text == "Yes."
        return overhead

    return asyncio.run(run())


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
        run_pair(10, tmp / "warm")  # imports, first-call caches
        run_session_async(5, tmp / "warm-async")
        pair = run_pair(args.turns, tmp / "exit")  # the product's policy: one checkpoint per turn
        nodes = run_pair(args.turns, tmp / "per-node", durability="async")
        ainvoke = run_session_async(args.turns, tmp / "ainvoke")
        calls = {(n, k): calls_per_question(n, k, tmp) for n in (1, 3, 8) for k in (0, 1)}

    ms = lambda s: s * 1000.0  # noqa: E731
    med = statistics.median
    o, f = pair["ours"], pair["floor"]
    print(f"SLC graph overhead per turn (model time excluded), SqliteSaver on a file, {args.turns} turns, one thread, "
          f"ours and the floor interleaved")
    print(f"  ours (GuardedGraph as built): median {ms(med(o)):.2f} ms   p95 {ms(pct(o, 95)):.2f} ms")
    print(f"  fair floor (bare 4 nodes, same checkpointer and policy, history trimmed the same way): median "
          f"{ms(med(f)):.2f} ms   p95 {ms(pct(f, 95)):.2f} ms")
    print(f"  ratio ours/floor (medians): {med(o) / med(f):.2f}x   (target <= 1.2x)")
    for name, xs in (("ours", o), ("floor", f)):
        print(f"  growth, {name}: turns 1-10 median {ms(med(xs[:10])):.2f} ms, turns {args.turns - 9}-{args.turns} "
              f"median {ms(med(xs[-10:])):.2f} ms")
    print(f"  checkpoint DB after {args.turns} turns (file + WAL): ours {pair['ours_db'] / 1e6:.2f} MB, "
          f"floor {pair['floor_db'] / 1e6:.2f} MB; messages in our checkpoint: {pair['ours_messages']}")
    print(f"  wall per turn incl. fake models: ours median {ms(med(pair['ours_wall'])):.2f} ms")
    no, nf = nodes["ours"], nodes["floor"]
    print(f"  with a checkpoint after every node (durability='async'): ours median {ms(med(no)):.2f} ms, floor "
          f"{ms(med(nf)):.2f} ms, ratio {med(no) / med(nf):.2f}x")
    print(f"  ours through ainvoke (async nodes, AsyncSqliteSaver): median {ms(med(ainvoke)):.2f} ms   "
          f"p95 {ms(pct(ainvoke, 95)):.2f} ms")
    print()
    print("Large-VLM calls per visual question (counted at the model); SLC = N+3 model calls, N+2 of them large")
    print(f"  {'N present':>9} | {'ours, all confirmed':>19} | {'ours, 1 disputed once':>21} | {'SLC large':>9} | {'SLC total':>9}")
    for n in (1, 3, 8):
        print(f"  {n:>9} | {calls[(n, 0)]:>19} | {calls[(n, 1)]:>21} | {n + 2:>9} | {n + 3:>9}")
    print("  (ours in total adds 1 small-VLM pass per round; identity extraction happens once at registration)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

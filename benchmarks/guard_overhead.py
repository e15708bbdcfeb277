"""What the privacy guard costs per turn: the SLC graph as built (GuardedGraph) against the same compiled
graph without the guard, turn by turn in one process, so both see the same machine load.

The guard's work per turn (slc.graphs.guard): bind the tenant, take the thread's file lock and read its
owner from the latest checkpoint, admit the photo (here a stored hash: checked and touched), make the
tracing callbacks private (tracing off here: nothing to swap), stamp the tenant into the checkpoint
metadata. Everything else (models, nodes, SqliteSaver on a file, one checkpoint per turn) is the same;
the fakes of benchmarks/graph_overhead.py stand in for the models.
Run: ``python benchmarks/guard_overhead.py [--turns 300]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from langgraph.graph import StateGraph

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graph_overhead import _session_setup  # noqa: E402 - the same fakes, photo and settings

from slc.graphs.sessions import TURN_DURABILITY, open_checkpointer  # noqa: E402
from slc.graphs.slc import build_graph  # noqa: E402
from slc.graphs.tracing import run_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--turns", type=int, default=300)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as td:
        settings, fakes, inp, ctx = _session_setup(Path(td))
        with open_checkpointer(settings) as saver:
            builder = build_graph(fakes.services(settings))
            guarded = builder.compile(checkpointer=saver, name="slc")
            bare = StateGraph.compile(builder, checkpointer=saver, name="slc")  # the same graph, no guard
            runs = {"guarded": (guarded, run_config("t-guarded", ctx, settings, visual=True)),
                    "unguarded": (bare, run_config("t-bare", ctx, settings, visual=True))}
            times: dict[str, list[float]] = {k: [] for k in runs}
            for i in range(args.turns + 10):  # 10 warm-up turns each, then interleaved
                for name in (("guarded", "unguarded") if i % 2 else ("unguarded", "guarded")):
                    graph, cfg = runs[name]
                    t0 = time.perf_counter()
                    out = graph.invoke(inp, config=cfg, context=ctx, durability=TURN_DURABILITY)
                    if i >= 10:
                        times[name].append(time.perf_counter() - t0)
                    assert out["answer"].text == "Yes."
    g, b = statistics.median(times["guarded"]), statistics.median(times["unguarded"])
    print(f"SLC turn wall time (fake models), SqliteSaver on a file, {args.turns} turns each, interleaved")
    print(f"  unguarded (baseline): median {b * 1000:.2f} ms")
    print(f"  guarded (as built)  : median {g * 1000:.2f} ms")
    print(f"  guard cost: {1000 * (g - b):+.2f} ms per turn (median difference), ratio {g / b:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

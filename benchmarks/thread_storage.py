"""Thread storage on disk against the thread's length: checkpoints pruned to the newest N vs never pruned.

What is measured (one run, same process, same disk): the SLC graph as built (GuardedGraph, SqliteSaver on a
file, one checkpoint per turn, the SqliteStore transcript next to it; fake models, as in
benchmarks/graph_overhead.py) runs a thread of ``--short`` and of ``--long`` turns twice:
- "pruned": the product's policy, the newest ``checkpoints_per_thread`` checkpoints kept (default 10),
  every turn appended to the thread's transcript;
- "unpruned" (the baseline, as before issue 19): every checkpoint kept, no transcript.
For each it reports the SQLite file + WAL as they are after the run, the file alone after a WAL checkpoint
(TRUNCATE), the bytes of the checkpoint rows (checkpoints + writes) and of the transcript rows, how many
checkpoints the thread holds, and the median graph overhead per turn (model time excluded), pruned and
unpruned turns interleaved. It checks that the whole transcript reads back (``thread_history``).
Run: ``python benchmarks/thread_storage.py [--short 200 --long 2000]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from graph_overhead import _session_setup, db_bytes

from slc.graphs.sessions import open_checkpointer, open_store, thread_history
from slc.graphs.slc import compile_graph
from slc.graphs.tracing import run_config


def _table_bytes(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        cps = conn.execute("SELECT coalesce(sum(length(checkpoint) + length(metadata)), 0) FROM checkpoints").fetchone()[0]
        writes = conn.execute("SELECT coalesce(sum(length(value)), 0) FROM writes").fetchone()[0]
        has_store = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'store'").fetchone()[0]
        store = conn.execute("SELECT coalesce(sum(length(value)), 0) FROM store").fetchone()[0] if has_store else 0
        n = conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    return {"checkpoint_rows": cps + writes, "transcript_rows": store, "checkpoints": n}


def _file_after_wal_checkpoint(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db.stat().st_size


class Thread:
    """One thread of the graph as built, pruned (product policy) or not (keep every checkpoint, no store)."""

    def __init__(self, tmp: Path, pruned: bool) -> None:
        self.settings, self.fakes, self.inp, self.ctx = _session_setup(tmp)
        if not pruned:
            self.settings = self.settings.model_copy(update={"checkpoints_per_thread": 10**9})
        self.pruned = pruned
        self._saver_cm = open_checkpointer(self.settings)
        saver = self._saver_cm.__enter__()
        self._store_cm = open_store(self.settings) if pruned else None
        store = self._store_cm.__enter__() if self._store_cm else None
        self.graph = compile_graph(checkpointer=saver, store=store, services=self.fakes.services(self.settings))
        self.cfg = run_config("long-thread", self.ctx, self.settings, visual=True)
        self.overhead: list[float] = []

    def turn(self) -> None:
        m0 = self.fakes.seconds()
        t0 = time.perf_counter()
        res = self.graph.invoke(self.inp, config=self.cfg, context=self.ctx, durability="exit")
        self.overhead.append(time.perf_counter() - t0 - (self.fakes.seconds() - m0))
        assert res["answer"].text == "Yes."

    def close(self) -> dict[str, Any]:
        out: dict[str, Any] = {"transcript_messages": len(thread_history(self.graph, "long-thread", settings=self.settings))}
        if self._store_cm:
            self._store_cm.__exit__(None, None, None)
        self._saver_cm.__exit__(None, None, None)
        db = self.settings.sessions_path
        out["file_wal"] = db_bytes(db)
        out.update(_table_bytes(db))
        out["file_truncated"] = _file_after_wal_checkpoint(db)
        out["overhead_ms"] = statistics.median(self.overhead) * 1000
        return out


def run(turns: int, tmp: Path) -> dict[str, dict[str, Any]]:
    threads = {"pruned": Thread(tmp / "pruned", True), "unpruned": Thread(tmp / "unpruned", False)}
    for i in range(turns):
        for name in (("pruned", "unpruned") if i % 2 else ("unpruned", "pruned")):
            threads[name].turn()
    return {name: t.close() for name, t in threads.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--short", type=int, default=200)
    ap.add_argument("--long", type=int, default=2000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as td:
        run(5, Path(td) / "warm")
        res = {n: run(n, Path(td) / f"t{n}") for n in (args.short, args.long)}
    mb = lambda b: b / 1e6  # noqa: E731
    print(f"Thread storage, SLC graph as built, SqliteSaver + SqliteStore on a file, one checkpoint per turn; "
          f"pruned = newest checkpoints_per_thread kept + transcript, unpruned = every checkpoint, no transcript")
    print(f"  {'policy':>8} {'turns':>6} | {'file+WAL MB':>11} | {'file MB (WAL folded)':>20} | {'checkpoint rows MB':>18} | "
          f"{'transcript rows MB':>18} | {'checkpoints':>11} | {'transcript msgs':>15} | {'overhead ms/turn':>16}")
    for policy in ("pruned", "unpruned"):
        for n in (args.short, args.long):
            r = res[n][policy]
            print(f"  {policy:>8} {n:>6} | {mb(r['file_wal']):>11.2f} | {mb(r['file_truncated']):>20.2f} | "
                  f"{mb(r['checkpoint_rows']):>18.3f} | {mb(r['transcript_rows']):>18.3f} | {r['checkpoints']:>11} | "
                  f"{r['transcript_messages']:>15} | {r['overhead_ms']:>16.2f}")
    for policy in ("pruned", "unpruned"):
        s, lg = res[args.short][policy], res[args.long][policy]
        print(f"  {policy}: {args.long} turns / {args.short} turns on disk: file+WAL {lg['file_wal'] / s['file_wal']:.2f}x, "
              f"file {lg['file_truncated'] / s['file_truncated']:.2f}x, checkpoint rows "
              f"{lg['checkpoint_rows'] / max(s['checkpoint_rows'], 1):.2f}x   (target <= 1.2x for the checkpoints)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

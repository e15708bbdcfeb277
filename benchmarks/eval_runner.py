"""Eval harness speed: concurrency, the rate limiter, and the report (intervals included).

Why here and not in tests: wall-clock numbers on a shared 2-core machine are measurements, not pass/fail
checks (tests/evals/test_runner.py checks the same behaviours on a barrier and an injected clock).
Each figure is the median over repeats, beside its named baseline measured in the same run:
- concurrency: a mode whose every call waits ``--latency`` s (an API's round trip, no CPU), 40 items at
  concurrency 4, against the same at concurrency 1 (baseline); the ratio is the speed-up.
- rate limit: the same mode at concurrency 4 under ``--rate`` calls/s: the achieved call rate (at most the
  limit, by construction of the token bucket), against the unlimited concurrency-4 run.
- report: ``write_report`` (scores + 95% cluster-bootstrap CIs over 2,000 resamples + expected baselines +
  markdown + PNG) on RAP recognition, 13,320 rows of one mode, against reading and validating the same
  results file (``read_results``, the floor of any report).

    python benchmarks/eval_runner.py [--repeats 3] [--latency 0.02] [--rate 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

BENCH = Path("/work/shared/benchmarks")


def _timed(fn, repeats: int) -> list[float]:
    out = []
    for r in range(repeats):
        t0 = time.perf_counter()
        fn(r)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.02, help="seconds each simulated model call waits")
    ap.add_argument("--rate", type=float, default=50.0, help="calls per second for the rate-limited run")
    ap.add_argument("--annotations", type=Path, default=BENCH, help="folder of the published annotation files")
    args = ap.parse_args()

    from slc.evals.datasets import load_benchmark
    from slc.evals.items import ChoiceItem, LoadedBenchmark, LoadReport
    from slc.evals.predictors import Prediction, TrivialPredictor
    from slc.evals.report import write_report
    from slc.evals.runner import RunConfig, read_results, results_path, run_benchmark

    class Waiting:
        """A mode whose call takes ``latency`` seconds of waiting, as a remote model's does."""

        name = "waiting"

        def describe(self) -> dict:
            return {"mode": "waiting"}

        def __call__(self, item):
            time.sleep(args.latency)
            return Prediction(reply="A")

    n = 40
    items = [ChoiceItem(id=f"q{i}", benchmark="toy", concepts=["c"], question="?", options={"A": "x", "B": "y"},
                        answer="A") for i in range(n)]
    toy = LoadedBenchmark(items=items, report=LoadReport(benchmark="toy", source="memory", items=n))
    with tempfile.TemporaryDirectory() as tmp:
        def run(concurrency: int, rate: float | None):
            def go(r: int) -> None:
                run_benchmark(toy, [Waiting()], RunConfig(out_dir=Path(tmp) / f"{concurrency}-{rate}-{r}",
                                                          concurrency=concurrency, rate_per_s=rate, shuffled=False,
                                                          progress=False))
            return statistics.median(_timed(go, args.repeats))

        seq, par = run(1, None), run(4, None)
        limited = run(4, args.rate)
        print(f"{n} items, each call waits {args.latency * 1000:.0f} ms; medians of {args.repeats} repeats")
        print(f"  concurrency 1 (baseline)   {seq:7.3f} s   {n / seq:7.1f} calls/s")
        print(f"  concurrency 4              {par:7.3f} s   {n / par:7.1f} calls/s   speed-up x{seq / par:.2f}")
        print(f"  concurrency 4, rate {args.rate:g}/s  {limited:7.3f} s   {n / limited:7.1f} calls/s   "
              f"(limit {args.rate:g}/s; {par / limited:.2f}x the unlimited run's rate)")

        rec = load_benchmark("rap-recognition", annotations=args.annotations)
        out = Path(tmp) / "report"
        run_benchmark(rec, [TrivialPredictor("random")], RunConfig(out_dir=out, shuffled=False, progress=False))
        path = results_path(out, "rap-recognition")
        rows, _ = read_results(path)
        reading = statistics.median(_timed(lambda r: read_results(path), args.repeats))
        report = statistics.median(_timed(lambda r: write_report("rap-recognition", rec.items, rows, out,
                                                                 shuffled=False), args.repeats))
        print(f"report on rap-recognition, {len(rows)} rows of one mode; medians of {args.repeats} repeats")
        print(f"  read_results (baseline)    {reading:7.3f} s")
        print(f"  write_report (CIs, 2000 resamples, md + png)  {report:7.3f} s   x{report / reading:.2f} the baseline")


if __name__ == "__main__":
    main()

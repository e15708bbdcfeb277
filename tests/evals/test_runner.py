"""The runner: resume after a crash, the LLM cache (rerun = zero model calls), concurrency + rate limit, reports, CLI.

No assertion here reads a clock: the rate limiter runs on an injected clock, concurrency is shown with a
barrier. How fast the runner is lives in benchmarks/eval_runner.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slc.evals.datasets import load_benchmark
from slc.evals.fingerprint import fingerprint
from slc.evals.items import ChoiceItem, LoadedBenchmark, LoadReport
from slc.evals.modes import ModeContext, resolve_mode
from slc.evals.predictors import ChatModelPredictor, Prediction, enable_llm_cache
from slc.evals.report import write_report
from slc.evals.runner import RunConfig, TokenBucket, read_results, run_benchmark
from slc.graphs.services import ServiceFactory


def _choice_bench(n: int) -> LoadedBenchmark:
    items = [ChoiceItem(id=f"q{i}", benchmark="toy", concepts=["bo"], question=f"Question {i} about <bo>?",
                        options={"A": "yes", "B": "no"}, answer="A" if i % 3 else "B") for i in range(n)]
    return LoadedBenchmark(items=items, report=LoadReport(benchmark="toy", source="memory", items=n))


class Crashing:
    """Answers "A" and raises after ``crash_after`` calls (a crash in the middle of a run)."""

    def __init__(self, crash_after: int | None) -> None:
        self.name = "crashy"
        self.crash_after = crash_after
        self.calls = 0

    def describe(self) -> dict:
        return {"mode": "crashy", "answer": "A"}  # what changes its answers (not when it crashes)

    def __call__(self, item):
        if self.crash_after is not None and self.calls >= self.crash_after:
            raise RuntimeError("simulated crash")
        self.calls += 1
        return Prediction(reply="A")


@pytest.mark.parametrize("concurrency", [1, 3])
def test_resume_after_interruption(tmp_path: Path, concurrency: int) -> None:
    bench = _choice_bench(20)  # 20 originals + 20 shuffled = 40 rows per mode
    cfg = RunConfig(out_dir=tmp_path, concurrency=concurrency, progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_benchmark(bench, [Crashing(crash_after=13)], cfg)
    rows, bad = read_results(tmp_path / "toy" / "results.jsonl")
    assert len(rows) == 13 and bad == 0  # every completed item was written before the crash
    # a half-written line (killed mid-write) is ignored, not fatal
    with (tmp_path / "toy" / "results.jsonl").open("a") as fh:
        fh.write('{"benchmark": "toy", "mode": "cra')
    second = Crashing(crash_after=None)
    result = run_benchmark(bench, [second], cfg.model_copy(update={"on_error": "raise"}))
    assert second.calls == 40 - 13  # continued where it stopped
    assert result.reused == {"crashy": 13} and result.ran == {"crashy": 27} and result.redone == {"crashy": {}}
    assert result.unreadable_lines == 1
    ids = [r.item_id for r in result.rows]
    assert len(ids) == 40 and len(set(ids)) == 40  # complete, no duplicates
    assert {r.fingerprint for r in result.rows} == {fingerprint({"mode": "crashy", "answer": "A"})}
    third = Crashing(crash_after=None)
    run_benchmark(bench, [third], cfg)
    assert third.calls == 0


def test_a_mode_that_does_not_describe_itself_is_reused_by_name_with_a_warning(tmp_path: Path) -> None:
    class Opaque:
        name = "opaque"

        def __call__(self, item):
            return Prediction(reply="A")

    bench = _choice_bench(3)
    cfg = RunConfig(out_dir=tmp_path, shuffled=False, progress=False)
    run_benchmark(bench, [Opaque()], cfg)
    again = run_benchmark(bench, [Opaque()], cfg)
    assert again.reused == {"opaque": 3}
    assert again.warnings == ["opaque does not describe its configuration (no describe()): its rows are reused "
                              "by mode name only"]


def test_recorded_errors_are_retried_next_run(tmp_path: Path) -> None:
    bench = _choice_bench(4)
    cfg = RunConfig(out_dir=tmp_path, shuffled=False, on_error="record", progress=False)
    result = run_benchmark(bench, [Crashing(crash_after=2)], cfg)
    assert sum(1 for r in result.rows if r.error) == 2
    again = Crashing(crash_after=None)
    result = run_benchmark(bench, [again], cfg)
    assert again.calls == 2 and not any(r.error for r in result.rows)


def test_cache_makes_a_rerun_cost_zero_model_calls(tmp_path: Path, counting_model, no_global_cache) -> None:
    bench = _choice_bench(6)
    cache = enable_llm_cache(tmp_path / "cache.sqlite")
    predictor = ChatModelPredictor(counting_model, root=None, name="large")
    cfg = dict(shuffled=False, progress=False)
    first = run_benchmark(bench, [predictor], RunConfig(out_dir=tmp_path / "run1", **cfg))
    assert type(counting_model).calls == 6
    assert sum(r.usage.model_calls for r in first.rows) == 6
    assert sum(r.usage.input_tokens for r in first.rows) == 60
    assert all(r.usage.cache_hits == 0 for r in first.rows)
    # a fresh results folder forces every item to be asked again: the cache answers all of them
    second = run_benchmark(bench, [predictor], RunConfig(out_dir=tmp_path / "run2", **cfg))
    assert type(counting_model).calls == 6  # no new model call
    assert sum(r.usage.model_calls for r in second.rows) == 0
    assert sum(r.usage.input_tokens + r.usage.output_tokens for r in second.rows) == 0
    assert sum(r.usage.cache_hits for r in second.rows) == 6
    assert cache.hits == 6 and [r.reply for r in second.rows] == [r.reply for r in first.rows]
    summary, table = write_report("toy", bench.items, second.rows, tmp_path / "run2", shuffled=False)
    large = next(s for s in summary if s.mode == "large")
    assert large.calls_per_item == 0 and large.cache_hits == 6


def test_chat_model_predictor_sends_images(tmp_path: Path, counting_model, bench_dir: Path, yollava_paths,
                                           image_tree, no_global_cache) -> None:
    image_tree(tmp_path, yollava_paths("test/shiba-gray/", 20))
    bench = load_benchmark("yollava-vqa", root=tmp_path, annotations=bench_dir)
    item = bench.available()[0]
    messages = ChatModelPredictor(counting_model, root=tmp_path).messages(item)
    parts = messages[-1].content
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert "Answer with the letter" in parts[-1]["text"] and "A. " in parts[-1]["text"]
    result = run_benchmark(bench, [ChatModelPredictor(counting_model, root=tmp_path)],
                           RunConfig(out_dir=tmp_path / "out", shuffled=False, progress=False))
    assert len(result.rows) == len(bench.available()) and result.skipped_missing_images == 170 - len(result.rows)


def test_concurrency_runs_items_at_once(tmp_path: Path) -> None:
    """Four items can only pass the barrier together: a runner that answered one at a time would time out."""
    barrier = threading.Barrier(4, timeout=30)

    class Together:
        name = "together"

        def describe(self) -> dict:
            return {"mode": "together"}

        def __call__(self, item):
            barrier.wait()
            return Prediction(reply="A")

    result = run_benchmark(_choice_bench(12), [Together()],
                           RunConfig(out_dir=tmp_path, concurrency=4, shuffled=False, progress=False))
    assert result.ran == {"together": 12} and not barrier.broken


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_token_bucket_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100, burst=5, clock=clock.monotonic, sleep=clock.sleep)
    for _ in range(25):
        bucket.acquire()
    assert clock.now == pytest.approx(0.20)  # 5 at once, 20 more at 100 per second
    assert len(clock.slept) == 20


def test_rate_limit_holds_across_threads(tmp_path: Path) -> None:
    clock = FakeClock()
    lock = threading.Lock()

    def sleep(s: float) -> None:
        with lock:
            clock.sleep(s)

    starts: list[float] = []

    class Stamp:
        name = "stamp"

        def describe(self) -> dict:
            return {"mode": "stamp"}

        def __call__(self, item):
            with lock:
                starts.append(clock.now)
            return Prediction(reply="A")

    bucket = TokenBucket(rate=40, burst=1, clock=clock.monotonic, sleep=sleep)
    run_benchmark(_choice_bench(12), [Stamp()], RunConfig(out_dir=tmp_path, concurrency=4, shuffled=False,
                                                          progress=False), bucket=bucket)
    assert len(starts) == 12 and max(starts) >= 11 / 40 - 1e-9  # never more than 40 calls per clock second


def test_module_callable_mode_and_report_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from slc.agent.settings import get_settings

    (tmp_path / "my_eval_mode.py").write_text(
        "from slc.evals.predictors import TrivialPredictor\n"
        "def answer(item):\n    return 'The answer is B.'\n"
        "def build(ctx):\n    return TrivialPredictor('always-A', seed=ctx.seed)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    bench = _choice_bench(9)
    ctx = ModeContext(services=ServiceFactory(get_settings()))
    fn_mode = resolve_mode("my_eval_mode:answer", ctx)  # a plain item -> reply function
    assert fn_mode.name == "my_eval_mode:answer"
    assert resolve_mode("my_eval_mode:build", ctx).name == "always-A"  # a factory taking ctx
    mode = resolve_mode("always-A", ctx)
    result = run_benchmark(bench, [mode, fn_mode], RunConfig(out_dir=tmp_path, progress=False))
    summary, table = write_report("toy", bench.items, result.rows, tmp_path)
    by = {s.mode: s for s in summary}
    assert by["always-A"].columns["accuracy"].value == pytest.approx(6 / 9)  # answers: B for i % 3 == 0
    assert by["always-A (expected)"].columns["accuracy"].value == pytest.approx(6 / 9)
    assert by["my_eval_mode:answer"].columns["accuracy"].value == pytest.approx(3 / 9)
    assert "| always-A | 9 |" in table
    for name in ("summary.md", "summary.json", "summary.png"):
        assert (tmp_path / "toy" / name).stat().st_size > 0
    from PIL import Image

    assert Image.open(tmp_path / "toy" / "summary.png").size[0] > 400
    with pytest.raises(KeyError, match="unknown mode"):
        resolve_mode("nonexistent", ctx)


def test_cli_on_real_text_qa(tmp_path: Path, bench_dir: Path) -> None:
    from slc.cli.app import app

    runner = CliRunner()
    args = ["eval", "yollava-text-qa", "--annotations", str(bench_dir), "--out", str(tmp_path), "--no-progress"]
    res = runner.invoke(app, args)  # no --mode: the expected baselines alone, nothing is run
    assert res.exit_code == 0, res.output
    assert "400 items" in res.output and "no --mode given" in res.output
    assert "| always-A (expected) | 400 | 0.975 |" in res.output
    res = runner.invoke(app, args + ["--mode", "always-A"])
    assert res.exit_code == 0 and "always-A: 0 reused, 800 answered" in res.output, res.output
    res = runner.invoke(app, args + ["--limit", "10", "--mode", "always-A"])
    assert res.exit_code == 0 and "always-A: 20 reused, 0 answered" in res.output  # answered by the run before
    summary = json.loads((tmp_path / "yollava-text-qa" / "summary.json").read_text())
    assert {s["n"] for s in summary} == {10}
    res = runner.invoke(app, ["eval", "--list"])
    assert res.exit_code == 0 and "rap-recognition" in res.output and "always-no" in res.output
    res = runner.invoke(app, ["eval", "no-such-bench", "--annotations", str(bench_dir)])
    assert res.exit_code == 2 and "unknown benchmark" in res.output

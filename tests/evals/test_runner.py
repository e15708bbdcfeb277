"""The runner: resume after a crash, the LLM cache (rerun = zero model calls), concurrency + rate limit, reports, CLI."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slc.evals.datasets import ChoiceItem, LoadedBenchmark, LoadReport, load_benchmark
from slc.evals.modes import ModeContext, resolve_mode
from slc.evals.predictors import ChatModelPredictor, Prediction, TrivialPredictor, enable_llm_cache
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
    assert result.skipped_done == {"crashy": 13} and result.ran == {"crashy": 27}
    assert result.unreadable_lines == 1
    ids = [r.item_id for r in result.rows]
    assert len(ids) == 40 and len(set(ids)) == 40  # complete, no duplicates
    third = Crashing(crash_after=None)
    run_benchmark(bench, [third], cfg)
    assert third.calls == 0


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
    large = next(s for s in summary if s.mode == "large" and s.variant == "original")
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


def test_concurrency_and_rate_limit(tmp_path: Path) -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    class Slow:
        name = "slow"

        def __call__(self, item):
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.05)
            with lock:
                active -= 1
            return Prediction(reply="A")

    bench = _choice_bench(12)
    start = time.perf_counter()
    run_benchmark(bench, [Slow()], RunConfig(out_dir=tmp_path / "a", concurrency=4, shuffled=False, progress=False))
    parallel = time.perf_counter() - start
    assert peak == 4 and parallel < 12 * 0.05 * 0.75  # overlapping calls, well under the sequential 0.6 s
    # the rate limit holds whatever the thread count: 12 calls at 40/s, burst 1 -> >= 11/40 s
    start = time.perf_counter()
    run_benchmark(bench, [TrivialPredictor("always-A")],
                  RunConfig(out_dir=tmp_path / "b", concurrency=4, rate_per_s=40, shuffled=False, progress=False))
    assert time.perf_counter() - start >= 11 / 40 * 0.95


def test_token_bucket_rate() -> None:
    bucket = TokenBucket(rate=100, burst=5)
    start = time.perf_counter()
    for _ in range(25):
        bucket.acquire()
    elapsed = time.perf_counter() - start
    assert 0.18 <= elapsed < 1.0  # 5 immediately, 20 more at 100/s


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
    by = {(s.mode, s.variant): s for s in summary}
    assert by[("always-A", "original")].primary == pytest.approx(6 / 9)  # answers: B for i % 3 == 0
    assert by[("baseline:always-A", "original")].primary == pytest.approx(6 / 9)
    assert by[("my_eval_mode:answer", "original")].primary == pytest.approx(3 / 9)
    assert "| always-A | original | 9 |" in table
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
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "400 items" in res.output
    assert "| always-A | original | 400 | 0.975 |" in res.output
    assert "| baseline:always-A | shuffled | 400 |" in res.output
    res = runner.invoke(app, args + ["--limit", "10", "--mode", "always-A"])
    assert res.exit_code == 0 and "always-A: 0 new, 20 resumed" in res.output  # answered by the first run
    summary = json.loads((tmp_path / "yollava-text-qa" / "summary.json").read_text())
    assert {s["n"] for s in summary} == {10}
    res = runner.invoke(app, ["eval", "--list"])
    assert res.exit_code == 0 and "rap-recognition" in res.output and "always-no" in res.output
    res = runner.invoke(app, ["eval", "no-such-bench", "--annotations", str(bench_dir)])
    assert res.exit_code == 2 and "unknown benchmark" in res.output

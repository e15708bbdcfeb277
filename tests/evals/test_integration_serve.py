"""Integration: the "large" mode over real HTTP (`transformers serve` on a tiny Idefics3 checkpoint), on real
Yo'LLaVA questions with a synthetic image tree laid out with the real paths; interrupted, resumed, then rerun
from the SQLite cache at zero model calls. No test double: the random model's replies mean nothing, the test
checks the plumbing (images sent, replies scored, resume, cache, usage accounting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slc.agent.large_vlm import build_large_vlm, serve_local
from slc.agent.settings import get_settings
from slc.evals.datasets import load_benchmark
from slc.evals.predictors import ChatModelPredictor, disable_llm_cache, enable_llm_cache
from slc.evals.runner import RunConfig, run_benchmark

pytestmark = pytest.mark.integration


class StopAfter:
    """Wraps a predictor and raises after ``n`` items (a crash in the middle of a run)."""

    def __init__(self, inner, n: int) -> None:
        self.inner, self.n, self.name, self.calls = inner, n, inner.name, 0

    def describe(self) -> dict:
        return self.inner.describe()

    def __call__(self, item):
        if self.calls >= self.n:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        return self.inner(item)


def test_large_mode_over_transformers_serve(tiny_vlm_path, tmp_path: Path, bench_dir: Path, yollava_paths,
                                            image_tree) -> None:
    ckpt = tiny_vlm_path("idefics3")
    image_tree(tmp_path / "data", yollava_paths("test/shiba-gray/", 20))
    bench = load_benchmark("yollava-vqa", root=tmp_path / "data", annotations=bench_dir)
    n = len(bench.available())
    assert n == 4  # shiba-gray's four questions
    large_settings = get_settings().large.model_copy(
        update={"model": str(ckpt), "max_tokens": 4, "max_retries": 0, "timeout_s": 60, "max_image_side": 64})
    cache = enable_llm_cache(tmp_path / "cache.sqlite")
    try:
        with serve_local(ckpt) as url:
            model = build_large_vlm(large_settings.model_copy(update={"base_url": url}))
            predictor = ChatModelPredictor(model, root=tmp_path / "data", name="large", max_image_side=64)
            cfg = RunConfig(out_dir=tmp_path / "run1", shuffled=True, progress=False)
            with pytest.raises(KeyboardInterrupt):
                run_benchmark(bench, [StopAfter(predictor, 3)], cfg)
            resumed = StopAfter(predictor, 100)
            first = run_benchmark(bench, [resumed], cfg)
            assert resumed.calls == 2 * n - 3 and first.reused == {"large": 3}
            assert len({r.item_id for r in first.rows}) == 2 * n
            assert all(r.reply is not None and r.error is None for r in first.rows)
            assert sum(r.usage.model_calls + r.usage.cache_hits for r in first.rows) == 2 * n
            assert sum(r.usage.input_tokens for r in first.rows) > 0  # usage read from the HTTP response
            second = run_benchmark(bench, [predictor], RunConfig(out_dir=tmp_path / "run2", progress=False))
        assert sum(r.usage.model_calls for r in second.rows) == 0  # every call answered by the cache
        assert [r.reply for r in sorted(second.rows, key=lambda r: r.item_id)] == [
            r.reply for r in sorted(first.rows, key=lambda r: r.item_id)]
        assert cache.hits >= 2 * n
    finally:
        disable_llm_cache()

"""Resume keyed by configuration: a rerun reuses only rows produced by the same model, endpoint, prompts,
bank and answer-changing settings; everything else is redone, and the run says why.

The chat models here are LangChain test doubles (CountingChatModel, see conftest) standing in for the
large VLM: the runner's bookkeeping is under test, not a model. The CLI test at the end talks real HTTP to
an OpenAI-compatible loopback server this test controls (slc.testing.loopback.ControlServer), through the
real ChatOpenAI client built from SLC_LARGE__* settings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slc.evals.fingerprint import describe, fingerprint
from slc.evals.items import ChoiceItem, LoadedBenchmark, LoadReport
from slc.evals.predictors import ChatModelPredictor, TrivialPredictor
from slc.evals.runner import RunConfig, read_results, results_path, run_benchmark

from .conftest import CountingChatModel


def _choice_bench(n: int) -> LoadedBenchmark:
    items = [ChoiceItem(id=f"q{i}", benchmark="toy", concepts=["bo"], question=f"Question {i} about <bo>?",
                        options={"A": "yes", "B": "no"}, answer="A" if i % 2 else "B") for i in range(n)]
    return LoadedBenchmark(items=items, report=LoadReport(benchmark="toy", source="memory", items=n))


def _large(answer: str) -> ChatModelPredictor:
    return ChatModelPredictor(CountingChatModel(answer=answer), root=None, name="large")


def test_another_model_under_the_same_mode_name_redoes_every_item(tmp_path: Path, no_global_cache) -> None:
    bench = _choice_bench(6)
    cfg = RunConfig(out_dir=tmp_path, shuffled=False, progress=False)
    CountingChatModel.calls = 0
    first = run_benchmark(bench, [_large("A")], cfg)
    assert CountingChatModel.calls == 6 and first.ran == {"large": 6}
    second = run_benchmark(bench, [_large("B")], cfg)
    assert CountingChatModel.calls == 12  # every item asked again: the model is not the one that answered
    assert second.reused == {"large": 0} and second.ran == {"large": 6}
    assert second.redone == {"large": {"configuration changed": 6}}
    assert second.changes["large"] == ["large.params.answer: 'A' -> 'B'"]
    assert {r.reply for r in second.rows} == {"B"}  # the report sees the new model's rows only
    # every row carries the fingerprint and the configuration that produced it
    assert {r.fingerprint for r in second.rows} == {fingerprint(describe(_large("B")))}
    assert all(r.config["large"]["params"] == {"answer": "B"} for r in second.rows)
    # switching back: the first model's rows are still valid, nothing is asked
    third = run_benchmark(bench, [_large("A")], cfg)
    assert CountingChatModel.calls == 12 and third.reused == {"large": 6} and third.ran == {"large": 0}
    assert {r.reply for r in third.rows} == {"A"}


def test_a_new_prompt_version_redoes_and_says_so(tmp_path: Path, no_global_cache,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from slc.agent import prompts

    bench = _choice_bench(3)
    cfg = RunConfig(out_dir=tmp_path, shuffled=False, progress=False)
    run_benchmark(bench, [_large("A")], cfg)
    old = prompts.EVAL_PROMPT_VERSION
    monkeypatch.setattr(prompts, "EVAL_PROMPT_VERSION", "eval-test-v2")
    again = run_benchmark(bench, [_large("A")], cfg)
    assert again.reused == {"large": 0} and again.ran == {"large": 3}
    assert again.changes["large"] == [f"prompts.eval: '{old}' -> 'eval-test-v2'"]


def test_rows_without_a_fingerprint_are_redone(tmp_path: Path) -> None:
    bench = _choice_bench(4)
    path = results_path(tmp_path, "toy")
    path.parent.mkdir(parents=True)
    # rows as an older slc wrote them: no fingerprint, no configuration
    path.write_text("".join(json.dumps({"benchmark": "toy", "mode": "always-A", "item_id": f"q{i}",
                                        "variant": "original", "task": "choice", "reply": "A"}) + "\n"
                            for i in range(4)))
    result = run_benchmark(bench, [TrivialPredictor("always-A")],
                           RunConfig(out_dir=tmp_path, shuffled=False, progress=False))
    assert result.reused == {"always-A": 0} and result.ran == {"always-A": 4}
    assert result.redone == {"always-A": {"no fingerprint recorded": 4}}
    rows, _ = read_results(path)
    assert len(rows) == 8  # the old rows stay in the file, beside the new ones


def test_errors_are_redone_with_their_reason(tmp_path: Path) -> None:
    class Flaky:
        name = "flaky"

        def __init__(self, fail: bool) -> None:
            self.fail = fail

        def describe(self) -> dict:
            return {"mode": "flaky"}

        def __call__(self, item):
            from slc.evals.predictors import Prediction

            if self.fail and item.id == "q1":
                raise RuntimeError("endpoint hiccup")
            return Prediction(reply="A")

    bench = _choice_bench(3)
    cfg = RunConfig(out_dir=tmp_path, shuffled=False, on_error="record", progress=False)
    run_benchmark(bench, [Flaky(fail=True)], cfg)
    again = run_benchmark(bench, [Flaky(fail=False)], cfg)
    assert again.reused == {"flaky": 2} and again.redone == {"flaky": {"failed last time": 1}}


# ----------------------------------------------------------------------------------------------------------
# The scenario end to end: `slc eval --mode large`, then another SLC_LARGE__MODEL, same --out
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_cli_rerun_with_another_large_model_answers_again(tmp_path: Path, bench_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from slc.agent.settings import get_settings
    from slc.cli.app import app
    from slc.testing.loopback import ControlServer

    with ControlServer(reply="A") as server:
        monkeypatch.setenv("SLC_LARGE__BASE_URL", server.url)
        monkeypatch.setenv("SLC_LARGE__MAX_RETRIES", "0")
        args = ["eval", "yollava-text-qa", "--annotations", str(bench_dir), "--mode", "large", "--limit", "5",
                "--out", str(tmp_path), "--no-progress", "--cache", "none"]  # every answer from the server
        runner = CliRunner()

        def asked() -> list[str]:
            return [r["model"] for r in server.requests]

        monkeypatch.setenv("SLC_LARGE__MODEL", "model-one")
        get_settings.cache_clear()
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert asked() == ["model-one"] * 10  # 5 items, file order and shuffled
        assert "large: 0 reused, 10 answered" in res.output
        monkeypatch.setenv("SLC_LARGE__MODEL", "model-two")
        get_settings.cache_clear()
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert asked() == ["model-one"] * 10 + ["model-two"] * 10
        assert "large: 0 reused, 10 answered (10 redone: configuration changed: " in res.output
        assert "large.params.model_name: 'model-one' -> 'model-two'" in res.output
        res = runner.invoke(app, args)  # same configuration again: everything reused
        assert res.exit_code == 0 and "large: 10 reused, 0 answered" in res.output, res.output
        assert len(asked()) == 20

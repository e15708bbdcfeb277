"""The report: one table per benchmark, raw and debiased side by side with 95% CIs (cluster bootstrap), expected
baselines, breakdowns, plots; and the intervals themselves against values known in closed form."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from slc.evals.baselines import expected_score
from slc.evals.datasets import load_benchmark
from slc.evals.intervals import bootstrap_ci
from slc.evals.items import CaptionItem, ChoiceItem, LoadedBenchmark, LoadReport, RecognitionItem
from slc.evals.metrics import shuffle_options
from slc.evals.predictors import Prediction, TrivialPredictor
from slc.evals.report import summarize, write_report
from slc.evals.runner import RunConfig, run_benchmark
from slc.evals.scoring import score_items


def _acc(sums: np.ndarray) -> np.ndarray:
    return sums[..., 0] / sums[..., 1]


# ----------------------------------------------------------------------------------------------------------
# Intervals
# ----------------------------------------------------------------------------------------------------------
def test_bootstrap_matches_the_normal_interval_for_independent_items() -> None:
    stats = np.array([[i % 2, 1] for i in range(400)], dtype=float)  # 200 of 400 correct, no clustering
    est = bootstrap_ci(stats, [str(i) for i in range(400)], _acc, n_boot=4000, seed=1)
    half = 1.96 * math.sqrt(0.25 / 400)  # 0.049
    assert est.value == pytest.approx(0.5)
    assert est.lo == pytest.approx(0.5 - half, abs=0.01) and est.hi == pytest.approx(0.5 + half, abs=0.01)
    assert est.clusters == 400


def test_bootstrap_over_clusters_widens_when_errors_cluster() -> None:
    # 10 concepts x 20 items: 5 concepts always right, 5 always wrong -> 0.5 either way
    stats = np.array([[1.0 if c < 5 else 0.0, 1.0] for c in range(10) for _ in range(20)])
    concepts = [f"c{c}" for c in range(10) for _ in range(20)]
    clustered = bootstrap_ci(stats, concepts, _acc, seed=0)
    independent = bootstrap_ci(stats, [str(i) for i in range(200)], _acc, seed=0)
    assert clustered.value == independent.value == pytest.approx(0.5)
    assert (clustered.hi - clustered.lo) > 2 * (independent.hi - independent.lo)
    assert clustered.clusters == 10
    # every concept equally good (3 of 4 right each): resampling concepts cannot move the score
    even = np.array([[1.0 if i % 4 else 0.0, 1.0] for i in range(40)])
    flat = bootstrap_ci(even, [f"c{i // 4}" for i in range(40)], _acc, seed=0)
    assert flat.lo == pytest.approx(0.75) and flat.hi == pytest.approx(0.75)
    assert bootstrap_ci(stats, concepts, _acc, seed=0) == clustered  # deterministic
    one = bootstrap_ci(stats, ["same"] * 200, _acc, seed=0)
    assert one.value == pytest.approx(0.5) and one.lo is None and one.hi is None  # one cluster: no interval


# ----------------------------------------------------------------------------------------------------------
# Expected-value baselines
# ----------------------------------------------------------------------------------------------------------
def test_random_baseline_is_its_expected_value(bench_dir: Path) -> None:
    items = load_benchmark("yollava-text-qa", annotations=bench_dir).items
    assert expected_score("random", items)["accuracy"] == pytest.approx(0.5)  # two options each, exactly
    assert expected_score("always-A", items)["accuracy"] == pytest.approx(390 / 400)
    mixed = [ChoiceItem(id="2", benchmark="b", question="?", options={"A": "x", "B": "y"}, answer="A"),
             ChoiceItem(id="3", benchmark="b", question="?", options={"A": "x", "B": "y", "C": "z"}, answer="C")]
    assert expected_score("random", mixed)["accuracy"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    rec = load_benchmark("rap-recognition", annotations=bench_dir).items
    for name in ("always-yes", "always-no", "random"):
        assert expected_score(name, rec)["weighted"] == pytest.approx(0.5)
    assert expected_score("always-no", rec)["accuracy"] == pytest.approx(12987 / 13320)
    assert expected_score("random", rec)["accuracy"] == pytest.approx(0.5)


# ----------------------------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------------------------
def _choice_bench(n: int) -> LoadedBenchmark:
    items = [ChoiceItem(id=f"c{i // 4}/{i}", benchmark="toy", concepts=[f"c{i // 4}"], question=f"Q{i}?",
                        options={"A": "yes", "B": "no"}, answer="A" if i % 5 else "B",
                        group="single" if i < n // 2 else "multi") for i in range(n)]
    return LoadedBenchmark(items=items, report=LoadReport(benchmark="toy", source="memory", items=n))


class Oracle:
    """Replies the correct option's text after an article, as a chatty model would."""

    name = "oracle"

    def describe(self) -> dict:
        return {"mode": "oracle"}

    def __call__(self, item):
        return Prediction(reply=f"The answer is a {item.options[item.answer]}.")


def test_raw_and_debiased_side_by_side_with_intervals(tmp_path: Path) -> None:
    bench = _choice_bench(40)
    result = run_benchmark(bench, [TrivialPredictor("always-A"), Oracle()], RunConfig(out_dir=tmp_path, progress=False))
    scores, table = write_report("toy", bench.items, result.rows, tmp_path)
    by = {s.mode: s for s in scores}
    a = by["always-A"]
    share_a = sum(it.answer == "A" for it in bench.items) / 40
    share_a_shuffled = sum(shuffle_options(it).answer == "A" for it in bench.items) / 40
    assert a.columns["accuracy"].value == pytest.approx(share_a)
    assert a.columns["accuracy_shuffled"].value == pytest.approx(share_a_shuffled)
    assert a.columns["accuracy"].lo < a.columns["accuracy"].value < a.columns["accuracy"].hi
    assert a.columns["accuracy"].clusters == 10  # items cluster by concept: 10 concepts of 4 items
    assert by["oracle"].columns["accuracy"].value == 1.0 and by["oracle"].unparsed == 0
    # one row per mode: both scores in it, each with its interval
    row = next(line for line in table.splitlines() if line.startswith("| always-A |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert re.fullmatch(r"0\.\d{3} \[0\.\d{3}, [01]\.\d{3}\]", cells[2]), cells
    assert re.fullmatch(r"0\.\d{3} \[0\.\d{3}, [01]\.\d{3}\]", cells[3]), cells
    # expected baselines in the same table, no interval (an expectation, not a sample)
    base = next(line for line in table.splitlines() if line.startswith("| random (expected) |"))
    assert "| 0.500 | 0.500 |" in base
    assert by["random (expected)"].baseline and by["random (expected)"].columns["accuracy"].lo is None
    # the single/multi breakdown is shown
    assert "by group" in table and "single (n=20)" in table and "multi (n=20)" in table
    # plots and machine-readable summary beside the table
    folder = tmp_path / "toy"
    main_table = (folder / "summary.md").read_text().split("#### by")[0]
    assert main_table.count("| always-A |") == 1
    saved = json.loads((folder / "summary.json").read_text())
    assert {s["mode"] for s in saved} >= {"always-A", "oracle", "random (expected)", "always-A (expected)"}
    from PIL import Image

    assert Image.open(folder / "summary.png").size[0] > 400


def test_unparsed_is_counted_apart_from_wrong(tmp_path: Path) -> None:
    class Vague:
        name = "vague"

        def describe(self) -> dict:
            return {"mode": "vague"}

        def __call__(self, item):
            return Prediction(reply="It could be a yes or a no.")

    bench = _choice_bench(8)
    result = run_benchmark(bench, [Vague()], RunConfig(out_dir=tmp_path, progress=False))
    (score,) = [s for s in summarize("toy", bench.items, result.rows) if s.mode == "vague"]
    assert score.unparsed == 8 and score.unparsed_shuffled == 8 and score.columns["accuracy"].value == 0.0


def test_recognition_breakdown_per_negative_kind(tmp_path: Path) -> None:
    items = []
    for c in range(6):
        items.append(RecognitionItem(id=f"p{c}", benchmark="rec", concepts=[f"c{c}", "x"], question="?",
                                     images=[], expected=True, kind="positive", group="multi"))
        items.append(RecognitionItem(id=f"n{c}", benchmark="rec", concepts=[f"c{c}", "x"], question="?",
                                     images=[], expected=False, kind="negative: partly present", group="multi"))
        items.append(RecognitionItem(id=f"m{c}", benchmark="rec", concepts=[f"c{c}"], question="?", images=[],
                                     expected=False, kind="negative: none present", group="single"))

    class SaysYesToPairs:
        name = "pairs"

        def describe(self) -> dict:
            return {"mode": "pairs"}

        def __call__(self, item):
            return Prediction(reply="Yes" if len(item.concepts) == 2 else "No")

    bench = LoadedBenchmark(items=items, report=LoadReport(benchmark="rec", source="memory", items=len(items)))
    result = run_benchmark(bench, [SaysYesToPairs()], RunConfig(out_dir=tmp_path, shuffled=False, progress=False))
    scores, table = write_report("rec", items, result.rows, tmp_path, shuffled=False)
    pairs = next(s for s in scores if s.mode == "pairs")
    assert pairs.columns["positive"].value == 1.0 and pairs.columns["negative"].value == pytest.approx(0.5)
    assert pairs.columns["weighted"].value == pytest.approx(0.75)
    kinds = {b.value: b.estimate.value for b in pairs.breakdown if b.dimension == "kind"}
    assert kinds == {"positive": 1.0, "negative: partly present": 0.0, "negative: none present": 1.0}
    assert "by kind" in table and "negative: partly present (n=6)" in table


def test_caption_model_that_never_names_a_concept_scores_zero(tmp_path: Path) -> None:
    items = [CaptionItem(id=str(i), benchmark="cap", concepts=["bo"], question="", present=["bo"]) for i in range(4)]
    s = score_items(items, ["a dog on a sofa"] * 4)
    assert s["recall"] == 0.0 and s["f1"] == 0.0 and s["precision"] is None  # precision undefined, F1 is not

    class Plain:
        name = "plain"

        def describe(self) -> dict:
            return {"mode": "plain"}

        def __call__(self, item):
            return Prediction(reply="a dog on a sofa")

    bench = LoadedBenchmark(items=items, report=LoadReport(benchmark="cap", source="memory", items=4))
    result = run_benchmark(bench, [Plain()], RunConfig(out_dir=tmp_path, progress=False))
    _, table = write_report("cap", items, result.rows, tmp_path)
    row = next(line for line in table.splitlines() if line.startswith("| plain |"))
    assert "| 0.000 |" in row  # F1 0, not "-"


def test_cli_prints_the_table_with_expected_baselines(tmp_path: Path, bench_dir: Path) -> None:
    from slc.cli.app import app

    res = CliRunner().invoke(app, ["eval", "yollava-text-qa", "--annotations", str(bench_dir), "--out",
                                   str(tmp_path), "--no-progress", "--mode", "always-A"])
    assert res.exit_code == 0, res.output
    assert re.search(r"\| always-A \| 400 \| 0\.975 \[0\.\d{3}, 0\.\d{3}\] \| 0\.\d{3} \[", res.output), res.output
    assert "| random (expected) | 400 | 0.500 | 0.500 |" in res.output
    assert "| always-A (expected) | 400 | 0.975 |" in res.output
    assert "bootstrap over 40 concepts" in res.output
    assert "2 degenerate items" in res.output

"""`slc data generate` runs end to end through typer and writes a loadable dataset."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from slc.cli.app import app as slc_app
from slc.cli.data import app


def test_generate_writes_dataset(tmp_path):
    out = tmp_path / "ds"
    res = CliRunner().invoke(app, ["generate", "--out", str(out), "-n", "3", "--positives", "2", "--easy", "1",
                                   "--hard", "2", "--k", "1,2", "--seed", "3", "--size", "48"])
    assert res.exit_code == 0, res.output
    assert "samples kept" in res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["samples"] == 15 and manifest["config"]["size"] == 48
    assert manifest["config"]["plan"]["k_weights"] == {"1": 1.0, "2": 1.0}
    assert len((out / "train.jsonl").read_text().splitlines()) == manifest["counts"]["rows_train"]


def test_generate_mounted_under_slc_data_and_bad_options(tmp_path):
    runner = CliRunner()
    res = runner.invoke(slc_app, ["data", "generate", "--out", str(tmp_path), "-n", "1", "--positives", "1",
                                  "--easy", "0", "--hard", "0", "--no-filter"])
    assert res.exit_code == 0, res.output
    bad = runner.invoke(app, ["generate", "--out", str(tmp_path), "--positives", "0", "--easy", "0", "--hard", "0"])
    assert bad.exit_code != 0 and "no samples" in bad.output
    bad_k = runner.invoke(app, ["generate", "--out", str(tmp_path), "-n", "1", "--k", "5"])
    assert bad_k.exit_code != 0 and "editable" in bad_k.output
    shown = runner.invoke(app, ["show-world", "-n", "2"])
    assert shown.exit_code == 0 and "<c000>" in shown.output

"""Long jobs show labelled progress; library noise is silent by default and shown with ``-v`` (issue 17,
case 5). The real `slc` app through typer's runner, on real tiny models; what is checked is what a person
sees (stdout and stderr as the runner captured them)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from slc.cli.app import app

from .conftest import world_images


@pytest.fixture
def cli(tiny_clip_path, monkeypatch):
    from slc.agent.settings import get_settings

    monkeypatch.setenv("SLC_IMAGE_ENCODER", str(tiny_clip_path))
    get_settings.cache_clear()
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_loading_bars_and_library_warnings_only_with_v(cli, tmp_path, tiny_clip_path, monkeypatch):
    import shutil

    from slc.agent.settings import get_settings

    _, refs = world_images(1)["c000"]
    refs[0].save(tmp_path / "a.png")

    def add(*flags: str, name: str):
        clip = shutil.copytree(tiny_clip_path, tmp_path / f"clip-{name}")  # a model this process has not loaded yet
        monkeypatch.setenv("SLC_IMAGE_ENCODER", str(clip))
        get_settings.cache_clear()
        return cli(*flags, "concept", "add", name, str(tmp_path / "a.png"))

    quiet = add(name="mug")
    assert quiet.exit_code == 0, quiet.output
    assert "Added <mug>" in quiet.stdout and "Loading weights" not in quiet.output and quiet.stderr == ""
    loud = add("-v", name="cup")
    assert loud.exit_code == 0, loud.output
    assert "Loading weights" in loud.stderr  # transformers' own bar, now that it was asked for


def test_concept_import_shows_labelled_progress(cli, tmp_path):
    images = world_images(3)
    for name, (_, refs) in images.items():
        folder = tmp_path / "yollava-data" / "train" / name
        folder.mkdir(parents=True)
        refs[0].save(folder / "0.png")
    r = cli("concept", "import", "yollava", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert "importing yollava concepts" in r.stderr and "3/3" in r.stderr
    assert "added" in r.stdout and all(name in r.stdout for name in images)


@pytest.mark.slow
def test_train_bank_shows_one_labelled_bar_per_run_and_no_raw_logs(cli, tmp_path):
    r = cli("train", "bank", "--out", str(tmp_path / "bank"), "--world", "8", "--k", "1", "--steps", "3",
            "--adapter-minutes", "5", "--batch-size", "2")
    assert r.exit_code == 0, r.output
    last = [line for line in r.stderr.replace("\r", "\n").splitlines() if line.startswith("training meta00")][-1]
    assert "(up to 3 steps or 5.00 CPU-min)" in last and "100%" in last and "step 3" in last
    assert "{'train_runtime'" not in r.output and "{'loss'" not in r.output  # the Trainer's raw log dicts
    assert "Warning" not in r.output and "Loading weights" not in r.output
    assert "bank written" in r.stdout


def test_the_learning_benchmark_shows_progress_by_default():
    import inspect

    from slc.cli.train import benchmark

    assert inspect.signature(benchmark).parameters["progress"].default.default is True

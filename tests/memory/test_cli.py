"""`slc concept ...` through typer's runner, on the real default path (settings -> encoders -> Chroma)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from .conftest import noise_image, write_image


@pytest.fixture
def cli(settings):  # settings fixture sets SLC_IMAGE_ENCODER to the tiny CLIP
    from slc.agent.settings import get_settings

    get_settings.cache_clear()
    from slc.cli.app import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["concept", *args])


def test_add_list_show_remove(cli, tmp_path):
    imgs = [str(write_image(tmp_path / f"{i}.png", noise_image(i))) for i in range(2)]
    r = cli("add", "<bo>", *imgs, "--description", "my golden retriever", "--category", "dog")
    assert r.exit_code == 0, r.output
    assert "Added <bo> with 2 image(s)" in r.output
    r = cli("list")
    assert r.exit_code == 0 and "<bo>" in r.output and "dog" in r.output and "golden" in r.output
    r = cli("show", "BO")
    assert r.exit_code == 0 and "my golden retriever" in r.output and "category: dog" in r.output
    r = cli("list", "--tenant", "someone-else")
    assert r.exit_code == 0 and "No concepts yet" in r.output
    r = cli("remove", "bo")
    assert r.exit_code == 0 and "Removed <bo>" in r.output
    assert "No concepts yet" in cli("list").output


def test_errors_are_one_line_exit_1(cli, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    r = cli("add", "bo", str(bad))
    assert r.exit_code == 1 and "Invalid image" in r.output and "empty file" in r.output
    assert "Traceback" not in r.output
    r = cli("show", "nobody")
    assert r.exit_code == 1 and "Unknown concept 'nobody'" in r.output
    r = cli("add", "two words", str(write_image(tmp_path / "ok.png", noise_image(1))))
    assert r.exit_code == 1 and "not valid" in r.output
    r = cli("import", "coco", str(tmp_path))
    assert r.exit_code == 1 and "Unknown import format" in r.output


def test_import_command(cli, tmp_path):
    for c in ("bo", "mam"):
        write_image(tmp_path / "yollava-data" / "train" / c / "0.png", noise_image(len(c)))
    r = cli("import", "yollava", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert "added" in r.output and "bo" in r.output and "mam" in r.output

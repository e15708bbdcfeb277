"""From `slc demo` to your own offline `ask`/`chat` in one command (issue 17, case 6).

The real `slc` app through typer's runner: the demo (large role in-process, to keep the suite fast) writes
`slc.toml` beside its memory and session; `SLC_CONFIG=that slc ask ...` and `slc chat --thread demo` then
run offline on the same models, the large role in-process through ``local:<checkpoint>`` (no server).
"""

from __future__ import annotations

import json
import tomllib

import pytest
from typer.testing import CliRunner

from slc.cli.app import app

pytestmark = pytest.mark.integration


@pytest.fixture
def demo_env(monkeypatch):
    """Nothing configured: the demo runs the shipped small VLM (identity bank), the shipped large role and the
    training-free object-histogram image encoder."""
    from slc.agent.settings import get_settings

    monkeypatch.delenv("SLC_SMALL__MODEL", raising=False)
    monkeypatch.delenv("SLC_IMAGE_ENCODER", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    get_settings.cache_clear()
    return monkeypatch


def test_the_demo_leaves_a_config_that_runs_ask_and_chat_offline(demo_env, tmp_path):
    from slc.agent.settings import get_settings

    runner = CliRunner()
    demo_dir = tmp_path / "demo"
    r = runner.invoke(app, ["demo", "--in-process", "--dir", str(demo_dir)])
    assert r.exit_code == 0, r.output
    config = demo_dir / "slc.toml"
    assert f"SLC_CONFIG={config} slc chat --thread demo" in r.stdout
    assert "<endpoint>" not in r.stdout  # no hint at a server the demo has already stopped
    written = tomllib.loads(config.read_text())
    assert written["large"]["model"].startswith("local:") and "base_url" not in written["large"]
    assert written["data_dir"] == str(demo_dir)

    # a fresh shell: only SLC_CONFIG (the suite's own SLC_* variables would take precedence over the file)
    for var in ("SLC_DATA_DIR", "SLC_SMALL__MODEL", "SLC_IMAGE_ENCODER"):
        demo_env.delenv(var, raising=False)
    demo_env.setenv("SLC_CONFIG", str(config))
    get_settings.cache_clear()

    r = runner.invoke(app, ["ask", str(demo_dir / "photo.png"), "Is <c000> in this photo?\nAnswer Yes or No.", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["answer"]["structured"] and not out["degraded"]
    # the demo's memory and models: <c000> recalled, found in its photo, and the answer says so
    assert {(f["concept"], f["present"]) for f in out["final"]} == {("c000", "true")}
    assert out["answer"]["text"] == "Yes"

    r = runner.invoke(app, ["chat", "--thread", "demo"], input="Is <c001> in this photo?\n")
    assert r.exit_code == 0, r.output
    assert "session demo: resumed, 4 earlier message(s)" in r.stdout


def test_a_local_large_role_that_is_not_there_fails_before_any_turn(monkeypatch, tmp_path):
    from slc.agent.errors import ModelNotFoundError
    from slc.agent.large_vlm import build_large_vlm
    from slc.agent.settings import LargeVLMSettings

    with pytest.raises(ModelNotFoundError):
        build_large_vlm(LargeVLMSettings(model=f"local:{tmp_path / 'nothing-here'}"))

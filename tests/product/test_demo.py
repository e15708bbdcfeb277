"""`slc demo` end to end (in-process large role, to keep the suite fast; the default `transformers serve`
path is what the README runs, and test_commands.py covers serving).

With nothing configured it runs the shipped trained models (the identity bank as the small VLM, the
concept-world large role): its final reports must match the renderer's truth for the query photo (<c000>
in it, <c001> not), every node must run, and it must say where the session and trace are.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def shipped_env(env, monkeypatch):
    """The product env without a configured small VLM or image encoder, so the demo takes its defaults."""
    from slc.agent.settings import get_settings

    monkeypatch.delenv("SLC_SMALL__MODEL", raising=False)
    monkeypatch.delenv("SLC_SMALL__MAX_NEW_TOKENS", raising=False)
    monkeypatch.delenv("SLC_IMAGE_ENCODER", raising=False)  # the demo's own: the object histogram
    get_settings.cache_clear()
    return env


def test_demo_in_process_gives_the_true_verdicts(run_cli, shipped_env, tmp_path):
    r = run_cli("demo", "--in-process", "--dir", str(tmp_path / "demo"))
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "Offline default" in out  # what the shipped models are and are not
    assert "report: <c000> present=true verified=True" in out
    assert "report: <c001> present=false verified=True" in out
    assert "check: <c000> present=true (truth: true" in out and "check: <c001> present=false (truth: false" in out
    assert "check: turn 1 answer 'Yes'" in out and "check: turn 2 answer 'No'" in out and ": NO" not in out
    assert "session DB:" in out and "trace:" in out
    events = [json.loads(line) for line in (tmp_path / "demo" / "trace.jsonl").read_text().splitlines()]
    nodes = [e["node"] for e in events]
    assert nodes[0] == "recall" and nodes.count("reason") == 2 and "reflect" in nodes and "personalize" in nodes
    finals = [f for e in events if e["node"] == "reason" for f in e["final"]]
    assert {(f["concept"], f["present"]) for f in finals} == {("c000", "true"), ("c001", "false")}
    assert (tmp_path / "demo" / "sessions.sqlite").is_file()
    # a second run starts from a fresh demo folder (its trace holds only its own two turns). Whether a turn loops
    # back can differ between runs: each verification call carries a fresh random fence nonce, and the tiny large
    # role's verdict on a right claim is not stable under it (docs/COLLABORATION.md)
    r2 = run_cli("demo", "--in-process", "--dir", str(tmp_path / "demo"))
    assert r2.exit_code == 0, r2.output
    again = [json.loads(line)["node"] for line in (tmp_path / "demo" / "trace.jsonl").read_text().splitlines()]
    assert again.count("recall") == 2 and again.count("reason") == 2


def test_demo_refuses_a_folder_it_did_not_make(run_cli, env, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")
    r = run_cli("demo", "--dir", str(tmp_path / "mine"))
    assert r.exit_code == 1 and "was not made by `slc demo`" in r.stderr
    assert (tmp_path / "mine" / "precious.txt").exists()

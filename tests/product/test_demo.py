"""`slc demo` end to end (in-process large role, to keep the suite fast; the default `transformers serve`
path is what the README runs, and test_commands.py covers serving). It must loop back at least once and
say where the session and trace are."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def test_demo_in_process(run_cli, env, tmp_path):
    r = run_cli("demo", "--in-process", "--dir", str(tmp_path / "demo"))
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "NOT meaningful beyond the plumbing" in out
    assert "LOOP-BACK to personalize" in out and "check: reflection loop-back happened: yes" in out
    assert "session DB:" in out and "trace:" in out
    events = [json.loads(line) for line in (tmp_path / "demo" / "trace.jsonl").read_text().splitlines()]
    nodes = [e["node"] for e in events]
    assert nodes == ["recall", "personalize", "reflect", "personalize", "reflect", "reason", "recall", "reason"]
    assert (tmp_path / "demo" / "sessions.sqlite").is_file()
    # a second run reuses the models and starts from a fresh demo folder
    r2 = run_cli("demo", "--in-process", "--dir", str(tmp_path / "demo"))
    assert r2.exit_code == 0, r2.output
    assert len((tmp_path / "demo" / "trace.jsonl").read_text().splitlines()) == 8


def test_demo_refuses_a_folder_it_did_not_make(run_cli, env, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")
    r = run_cli("demo", "--dir", str(tmp_path / "mine"))
    assert r.exit_code == 1 and "was not made by `slc demo`" in r.stderr
    assert (tmp_path / "mine" / "precious.txt").exists()

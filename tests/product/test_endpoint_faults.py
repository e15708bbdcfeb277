"""The large VLM's endpoint failure matrix (issue 15, case 2, 4, 5; issue 19's call counter).

One policy, tested through the real CLI, memory, small VLM and sessions against ControlServer, a loopback
OpenAI-compatible endpoint we switch between faults: a transient fault or an unusable reply degrades the
turn honestly (exit 0, ``degraded``, a flag saying what came back); a configuration fault (credentials,
unknown model, wrong URL) is one line naming the setting to fix, with the server's own reason; a call never
outlives its total deadline; every HTTP request is counted; a chat goes on after any of them.
"""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.integration


def _ask(run_cli, env, question: str = "Is <c001> in this photo?"):
    return run_cli("ask", str(env.photo), question, "--json")


def _one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("mode", ["400", "truncated", "html", "nomessage"])
def test_an_unusable_reply_degrades_the_turn_and_says_what_came_back(run_cli, control_env, control_server,
                                                                    memory_with_concepts, mode):
    control_server.mode = mode
    r = _ask(run_cli, control_env)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["degraded"] and out["answer"]["degraded"]
    bad = [f for f in out["flags"] if f.startswith("large_vlm_bad_reply:")]
    assert bad and control_server.url in bad[0], out["flags"]
    assert all(v["verdict"] == "unverified" for v in out["verdicts"])


@pytest.mark.parametrize("mode, says", [
    ("401", ["SLC_LARGE__API_KEY", "HTTP 401", "injected 401"]),
    ("404", ["SLC_LARGE__MODEL", "SLC_LARGE__BASE_URL", "HTTP 404"]),
    ("pinned", ["SLC_LARGE__MODEL", "Server is pinned to 'pinned-model'"]),  # the server's own reason
])
def test_a_configuration_fault_is_one_line_naming_the_fix(run_cli, control_env, control_server, memory_with_concepts,
                                                         mode, says):
    control_server.mode = mode
    msg = _one_line_error(_ask(run_cli, control_env))
    assert control_server.url in msg
    for part in says:
        assert part in msg, msg


def test_the_model_name_is_checked_against_the_served_models(run_cli, control_env, control_server):
    control_server.models = ["other-model", "another"]
    msg = _one_line_error(_ask(run_cli, control_env))
    assert "'control'" in msg and "'other-model'" in msg and "SLC_LARGE__MODEL" in msg
    assert control_server.requests == []  # refused before any chat request


def test_python_ask_without_a_large_model_raises_the_configuration_error(env):
    from slc.agent.errors import LargeVLMConfigError
    from slc.agent.settings import get_settings
    from slc.graphs.sessions import ask, open_graph

    assert get_settings().large.model == "local" and get_settings().large.base_url is None
    with open_graph(get_settings()) as graph, pytest.raises(LargeVLMConfigError, match="SLC_LARGE__BASE_URL"):
        ask(graph, "What does <c000> look like?", thread_id="no-large")


def test_a_trickling_endpoint_is_cut_at_the_call_deadline(run_cli, control_env, control_server, memory_with_concepts):
    # ~250 bytes at one every 0.5 s: each read is within SLC_LARGE__TIMEOUT_S=1, the whole call is not
    control_server.mode, control_server.trickle_s = "trickle", 0.5
    t0 = time.monotonic()
    try:
        r = _ask(run_cli, control_env)
    finally:
        took = time.monotonic() - t0
        control_server.mode = "ok"  # let the trickling handlers hang up
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["degraded"] and any("deadline of 2 s" in f for f in out["flags"]), out["flags"]
    assert took < 60, took  # two calls of ~125 s each before the deadline existed


def test_garbage_or_empty_output_is_not_an_answer(run_cli, control_env, control_server, memory_with_concepts):
    control_server.mode, control_server.mode_reply = "reply", "\x00\x00 \x07"
    out = json.loads(_ask(run_cli, control_env).stdout)
    assert out["degraded"] and "\x00" not in out["answer"]["text"]
    assert any(f.startswith("large_vlm_bad_reply:") and "empty or garbage" in f for f in out["flags"]), out["flags"]


def test_the_answer_prompt_asks_for_plain_json(run_cli, control_env, control_server, memory_with_concepts):
    r = _ask(run_cli, control_env)
    assert r.exit_code == 0, r.output
    last = control_server.requests[-1]["messages"][-1]["content"]
    text = last if isinstance(last, str) else "".join(p.get("text", "") for p in last)
    assert '{"answer": "<your answer to the user>"' in text and "{{" not in text and "}}" not in text


def test_the_call_counter_counts_every_http_attempt(run_cli, control_env, control_server, memory_with_concepts,
                                                    monkeypatch):
    from slc.agent.settings import get_settings

    monkeypatch.setenv("SLC_LARGE__MAX_RETRIES", "2")
    get_settings.cache_clear()
    control_server.fail_next = 1  # one HTTP 500, retried by the client, then answers
    out = json.loads(_ask(run_cli, control_env).stdout)
    assert not out["degraded"]
    assert out["large_vlm_calls"] == len(control_server.requests) >= 3  # the refused one counts too


def test_a_chat_goes_on_after_a_configuration_fault(run_cli, control_env, control_server, memory_with_concepts):
    control_server.fail_next, control_server.fail_mode = 1, "401"  # the first question's call is refused
    r = run_cli("chat", "--thread", "cf", input=f"@{control_env.photo} Is <c001> here?\n@{control_env.photo} And now?\n")
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    assert r.stdout.count("Error: ") == 1 and "HTTP 401" in r.stdout
    assert "Demo model" in r.stdout  # the second question was answered

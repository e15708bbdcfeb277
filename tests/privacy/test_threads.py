"""A chat thread belongs to the tenant that started it (issue 20, case 3): CLI, Python API and tool.

Tenant "a" tells the large VLM a secret on thread T; tenant "b" then names T. b must get a clear refusal
and the large VLM must never receive a's secret in a request made for b (the loopback ControlServer
records every request). Real CLI, memory, SQLite sessions; the large VLM is the ControlServer.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

SECRET = "XYZZY-4417"


def _requests_with_secret(server, since: int) -> int:
    return sum(SECRET in json.dumps(req) for req in server.requests[since:])


def test_cli_chat_refuses_another_tenants_thread(run_cli, env):
    r = run_cli("chat", "--thread", "shared1", "--tenant", "a", input=f"My locker code is {SECRET}.\n")
    assert r.exit_code == 0, r.output
    assert _requests_with_secret(env.large, 0) == 1
    seen = len(env.large.requests)
    r = run_cli("chat", "--thread", "shared1", "--tenant", "b", input="What is my locker code?\n")
    assert r.exit_code == 1, r.output
    assert "shared1" in r.output and "another tenant" in r.output
    assert _requests_with_secret(env.large, seen) == 0
    # a resumes its own thread, with its history
    r = run_cli("chat", "--thread", "shared1", "--tenant", "a", input="And again?\n")
    assert r.exit_code == 0, r.output
    assert "resumed, 2 earlier message(s)" in r.output
    assert _requests_with_secret(env.large, seen) == 1


def test_python_api_refuses_another_tenants_thread(env):
    from slc.agent.errors import SLCError
    from slc.graphs.context import Context
    from slc.graphs.services import ServiceFactory
    from slc.graphs.sessions import ask, open_graph

    with open_graph(services=ServiceFactory()) as graph:
        ask(graph, f"My locker code is {SECRET}.", thread_id="t-api", context=Context(tenant="a"))
        seen = len(env.large.requests)
        with pytest.raises(SLCError, match="another tenant"):
            ask(graph, "What is my locker code?", thread_id="t-api", context=Context(tenant="b"))
        assert _requests_with_secret(env.large, seen) == 0
        ask(graph, "What was it?", thread_id="t-api", context=Context(tenant="a"))  # still a's
        assert _requests_with_secret(env.large, seen) == 1


def test_answer_tool_refuses_another_tenants_thread(env):
    from slc.graphs.context import Context
    from slc.tools.answer import TOOL_NAME, make_answer_tool

    def call(tool, question: str):
        return tool.invoke({"type": "tool_call", "id": "x", "name": TOOL_NAME,
                            "args": {"question": question, "thread_id": "t-tool"}})

    assert call(make_answer_tool(context=Context(tenant="a")), f"My locker code is {SECRET}.").status == "success"
    seen = len(env.large.requests)
    msg = call(make_answer_tool(context=Context(tenant="b")), "What is my locker code?")
    assert msg.status == "error" and "another tenant" in msg.content
    assert _requests_with_secret(env.large, seen) == 0

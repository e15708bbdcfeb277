"""No photo and no local path reaches LangSmith, whichever way the graph is run (issue 20, cases 1, 2, 4).

Each entry point runs a visual turn against the loopback LangSmith capture twice: with redaction on (the
default), where nothing posted may hold a data URL, the base64 of the photo the large VLM received, the
query photo's path or any path of the data dir (reference and query photos live there); and with
redaction off, the control that proves the capture does see the photo when it is allowed to.
Real CLI, memory, small VLM and SQLite sessions; the large VLM is the loopback ControlServer (conftest).
The host agent's own model in the tool test is a TEST DOUBLE (LangChain's GenericFakeChatModel replaying a
tool call), as a host's model would be any model.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage

pytestmark = pytest.mark.integration

NODE_RUNS = (b'"recall"', b'"personalize"', b'"reflect.verify"', b'"reason.answer"', b'"small_vlm.detect"')


def leaks(blob: bytes, env: Any, h: Any) -> list[str]:
    """What of the user's photos and files is in ``blob`` (empty: nothing)."""
    found = []
    if b"data:image" in blob:
        found.append("an image data URL")
    for b64 in {*h.sent_photo_b64(env.large), h.file_b64(env.photo)}:
        if b64[:80].encode() in blob or b64[-80:].encode() in blob:
            found.append("base64 of the photo")
    if str(env.photo).encode() in blob:
        found.append("the query photo's path")
    if str(env.data_dir).encode() in blob:
        found.append("a path in the data dir (reference or query photos)")
    return found


def shows_photo(blob: bytes, env: Any, h: Any) -> bool:
    return b"data:image" in blob and any(b[:80].encode() in blob for b in h.sent_photo_b64(env.large))


def test_cli_ask(run_cli, env, concepts, langsmith, h, monkeypatch):
    r = run_cli("ask", str(env.photo), "Is <c000> in this photo?", "--tenant", "a", "--json")
    assert r.exit_code == 0, r.output
    h.flush_traces()
    blob = langsmith.blob()
    assert all(n in blob for n in NODE_RUNS), "the capture must see the turn's runs"
    assert leaks(blob, env, h) == []
    assert json.loads(r.stdout)["image"].encode() in blob  # the trace names the photo by its hash

    langsmith.clear()
    monkeypatch.setenv("SLC_TRACING__REDACT_IMAGES", "false")
    h.reset_services()
    r = run_cli("ask", str(env.photo), "Is <c000> in this photo?", "--tenant", "a", "--json")
    assert r.exit_code == 0, r.output
    h.flush_traces()
    assert shows_photo(langsmith.blob(), env, h)  # control: the capture sees the photo when allowed


def test_python_api_ask(env, concepts, langsmith, h):
    from slc.graphs.context import Context
    from slc.graphs.services import ServiceFactory
    from slc.graphs.sessions import ask, open_graph

    services = ServiceFactory()
    with open_graph(services=services) as graph:
        res = ask(graph, "Is <c000> in this photo?", env.photo, thread_id="api-1", context=Context(tenant="a"))
        h.flush_traces()
        blob = langsmith.blob()
        assert all(n in blob for n in NODE_RUNS)
        assert leaks(blob, env, h) == []
        assert res.image.encode() in blob

        langsmith.clear()
        ask(graph, "Is <c000> in this photo?", env.photo, thread_id="api-2", context=Context(tenant="a", redact_images=False))
        h.flush_traces()
        assert shows_photo(langsmith.blob(), env, h)


def test_module_graph_as_langgraph_server_runs_it(env, concepts, langsmith, h):
    """`slc.graphs.slc:graph` (what langgraph.json serves), invoked as LangGraph Server / Studio invoke it."""
    from slc.graphs.slc import graph

    out = graph.invoke({"question": "Is <c000> in this photo?", "image": str(env.photo)},
                       config={"configurable": {"thread_id": "srv-1"}}, context={"tenant": "a"})
    assert out["answer"].text
    h.flush_traces()
    blob = langsmith.blob()
    assert all(n in blob for n in NODE_RUNS)
    assert leaks(blob, env, h) == []

    langsmith.clear()
    graph.invoke({"question": "Is <c000> in this photo?", "image": str(env.photo)},
                 config={"configurable": {"thread_id": "srv-2"}}, context={"tenant": "a", "redact_images": False})
    h.flush_traces()
    assert shows_photo(langsmith.blob(), env, h)


class HostModel(GenericFakeChatModel):
    """TEST DOUBLE for a host agent's own model: 'supports' tools by replaying scripted tool calls."""

    def bind_tools(self, tools: Any, **kw: Any) -> "HostModel":
        return self


def _host_run(env, tool) -> None:
    from langchain.agents import create_agent

    from slc.tools.answer import TOOL_NAME

    call = {"name": TOOL_NAME, "args": {"question": "Is <c000> in this photo?", "image_path": str(env.photo)},
            "id": "call-1", "type": "tool_call"}
    model = HostModel(messages=iter([AIMessage(content="", tool_calls=[call]), AIMessage(content="Done.")]))
    out = create_agent(model, tools=[tool]).invoke({"messages": [HumanMessage("Is c000 in my photo?")]})
    assert out["messages"][-1].content == "Done."
    assert "Demo model" in out["messages"][-2].content  # the tool answered


def _subtree(runs: dict[str, dict], root: str) -> dict[str, dict]:
    """The runs below ``root`` (not ``root`` itself), by following parent_run_id."""
    def under(run_id: str) -> bool:
        parent = runs.get(run_id, {}).get("parent_run_id")
        while parent:
            if str(parent) == root:
                return True
            parent = runs.get(str(parent), {}).get("parent_run_id")
        return False

    return {rid: r for rid, r in runs.items() if under(rid)}


def test_answer_tool_inside_a_traced_host_agent(env, concepts, langsmith, h):
    """The README's setup: create_agent(..., tools=[make_answer_tool()]) with the host's default tracer on.

    The host's own runs hold what its model wrote (the tool call's arguments, with the photo's path): that
    is the host's trace. Every run the tool opens below its tool run must hold no path, and nothing posted
    by anyone may hold the photo itself or a data-dir path."""
    from slc.graphs.context import Context
    from slc.tools.answer import TOOL_NAME, make_answer_tool

    _host_run(env, make_answer_tool(context=Context(tenant="a")))
    h.flush_traces()
    blob = langsmith.blob()
    assert leaks(blob.replace(str(env.photo).encode(), b"<host-arg>"), env, h) == []
    runs = langsmith.runs()
    tool_run = next(rid for rid, r in runs.items() if r.get("name") == TOOL_NAME and r.get("run_type") == "tool")
    ours = _subtree(runs, tool_run)
    assert any(r.get("name") == "slc" for r in ours.values()), "the graph's runs must be traced under the tool run"
    assert all(n.strip(b'"').decode() in {r.get("name") for r in ours.values()} for n in NODE_RUNS)
    assert [r["name"] for r in ours.values() if str(env.photo) in json.dumps(r)] == []

    langsmith.clear()
    _host_run(env, make_answer_tool(context=Context(tenant="a", redact_images=False)))
    h.flush_traces()
    assert shows_photo(langsmith.blob(), env, h)

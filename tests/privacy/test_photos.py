"""Query photos and file paths (issue 20, case 4): per-tenant photo storage with retention, hashes that
resolve only inside their tenant, and path inputs confined to the allowed roots in tool and server use.

Real memory (tiny CLIP), small VLM, SQLite sessions, CLI; the large VLM is the loopback ControlServer.
"""

from __future__ import annotations

import os
import time

import pytest

pytestmark = pytest.mark.integration


def _stored_files(env, sha: str) -> list:
    return sorted(env.data_dir.rglob(f"{sha}.*"))


def test_a_photo_hash_resolves_only_for_its_tenant(env, concepts):
    from slc.agent.errors import InvalidImageError
    from slc.graphs.context import Context
    from slc.graphs.services import ServiceFactory
    from slc.graphs.sessions import ask, open_graph

    with open_graph(services=ServiceFactory()) as graph:
        sha = ask(graph, "Is <c000> in this photo?", env.photo, thread_id="p-a", context=Context(tenant="a")).image
        assert len(_stored_files(env, sha)) == 1
        with pytest.raises(InvalidImageError, match="no stored photo"):
            ask(graph, "What is in this photo?", sha, thread_id="p-b", context=Context(tenant="b"))
        again = ask(graph, "And now?", sha, thread_id="p-a", context=Context(tenant="a"))  # its owner may
        assert again.image == sha


def test_query_photos_expire_after_the_retention_period(run_cli, env, concepts, monkeypatch, h):
    monkeypatch.setenv("SLC_PRIVACY__QUERY_PHOTO_RETENTION_DAYS", "1")
    h.reset_services()
    r = run_cli("ask", str(env.photo), "Is <c000> in this photo?", "--tenant", "a", "--json")
    assert r.exit_code == 0, r.output
    old = r.stdout[r.stdout.index('"image": "') + 10:][:64]
    (path,) = _stored_files(env, old)
    two_days_ago = time.time() - 2 * 86400
    os.utime(path, (two_days_ago, two_days_ago))
    h.reset_services()  # a new process: its first stored photo sweeps the tenant's expired ones
    r = run_cli("ask", str(env.elsewhere), "Is <c001> in this photo?", "--tenant", "a", "--json")
    assert r.exit_code == 0, r.output
    new = r.stdout[r.stdout.index('"image": "') + 10:][:64]
    assert _stored_files(env, old) == [] and len(_stored_files(env, new)) == 1


def test_memory_tools_read_only_allowed_paths(env, concepts):
    """Tenant b registering tenant a's stored reference photo (a path the process can read) is refused."""
    from slc.graphs.context import Context
    from slc.tools.memory_tools import make_memory_tools

    remember, recall, _ = make_memory_tools(context=Context(tenant="b"))

    def call(tool, args):
        return tool.invoke({"type": "tool_call", "id": "x", "name": tool.name, "args": args})

    stolen = concepts["c000"].images[0].path
    msg = call(remember, {"name": "stolen", "image_paths": [stolen]})
    assert msg.status == "error" and "allowed" in msg.content, msg.content
    msg = call(remember, {"name": "stolen", "image_paths": [str(env.elsewhere)]})
    assert msg.status == "error" and "allowed" in msg.content, msg.content
    msg = call(recall, {"image_path": stolen})
    assert msg.status == "error" and "allowed" in msg.content, msg.content
    assert call(recall, {}).content == "Known concepts: none"
    ok = call(remember, {"name": "mine", "image_paths": [str(env.photo)]})  # under the allowed root
    assert ok.status == "success" and "Remembered <mine>" in ok.content


def test_answer_tool_reads_only_allowed_paths(env, concepts):
    from slc.graphs.context import Context
    from slc.tools.answer import TOOL_NAME, make_answer_tool

    tool = make_answer_tool(context=Context(tenant="b"))
    for path in (concepts["c000"].images[0].path, str(env.elsewhere)):
        msg = tool.invoke({"type": "tool_call", "id": "x", "name": TOOL_NAME,
                           "args": {"question": "What is in this photo?", "image_path": path}})
        assert msg.status == "error" and "allowed" in msg.content, msg.content


def test_personalize_tool_reads_only_allowed_paths(env, concepts):
    from slc.graphs.services import ServiceFactory
    from slc.tools.personalize import PersonalizeTool

    services = ServiceFactory()
    tool = PersonalizeTool.from_memory(services.memory("a"), services.small_vlm())
    msg = tool.invoke({"type": "tool_call", "id": "x", "name": tool.name,
                       "args": {"image": str(env.elsewhere), "concepts": ["c000"]}})
    assert msg.status == "error" and "allowed" in msg.content, msg.content
    ok = tool.invoke({"type": "tool_call", "id": "y", "name": tool.name,
                      "args": {"image": str(env.photo), "concepts": ["c000"]}})
    assert ok.status == "success" and "<c000>" in ok.content


def test_graph_image_paths_are_confined_under_server_use(env, concepts):
    """The module-level graph (langgraph.json) reads a path input only under the allowed roots, and never
    one in the data dir (every tenant's photos live there)."""
    from slc.agent.errors import InvalidImageError
    from slc.graphs.slc import graph

    for path in (str(env.elsewhere), concepts["c000"].images[0].path):
        with pytest.raises(InvalidImageError, match="allowed"):
            graph.invoke({"question": "What is in this photo?", "image": path}, context={"tenant": "b"})
    out = graph.invoke({"question": "Is <c000> here?", "image": str(env.photo)}, context={"tenant": "a"})
    assert out["answer"].text

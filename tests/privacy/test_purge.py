"""Erasing a tenant (issue 20, "a tenant purge erases everything of that tenant"): `slc concept purge`.

Tenants a and b each have concepts, a query photo and a chat thread; purging a (with --threads) must leave
nothing of a on disk or in the session store, and everything of b as it was. Real CLI, memory, small
VLM, SQLite sessions; the large VLM is the loopback ControlServer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _thread(thread: str) -> list:
    from slc.agent.settings import get_settings
    from slc.graphs.sessions import open_graph

    with open_graph(get_settings()) as g:
        return g.get_state({"configurable": {"thread_id": thread}}).values.get("messages", [])


def _ask(run_cli, photo: Path, question: str, tenant: str, thread: str) -> str:
    r = run_cli("ask", str(photo), question, "--tenant", tenant, "--thread", thread, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["image"]


def test_purge_erases_everything_of_a_tenant_and_nothing_else(run_cli, env, concepts):
    b_ref = env.photos / "b-ref.png"
    env.images["c001"][1][0].save(b_ref)
    r = run_cli("concept", "add", "bobo", str(b_ref), "--tenant", "b")
    assert r.exit_code == 0, r.output
    a_photo = _ask(run_cli, env.photo, "Is <c000> in this photo?", "a", "ta")
    b_photo = _ask(run_cli, env.elsewhere, "Is <bobo> in this photo?", "b", "tb")
    a_files = [Path(i.path) for c in concepts.values() for i in c.images] + sorted(env.data_dir.rglob(f"{a_photo}.*"))
    b_files = sorted(env.data_dir.rglob(f"{b_photo}.*"))
    assert len(a_files) == 5 and all(f.is_file() for f in a_files) and len(b_files) == 1

    r = run_cli("concept", "purge", "--tenant", "a", "--threads", "--yes")
    assert r.exit_code == 0, r.output
    assert "2 concept(s), 1 query photo(s), 1 chat session(s)" in r.output
    assert [f for f in a_files if f.exists()] == []
    assert "No concepts yet" in run_cli("concept", "list", "--tenant", "a").output
    assert _thread("ta") == []
    # b keeps everything
    assert "bobo" in run_cli("concept", "list", "--tenant", "b").output
    assert all(f.is_file() for f in b_files) and len(_thread("tb")) == 2


def test_purge_without_threads_keeps_the_chats_and_asks_first(run_cli, env, concepts):
    _ask(run_cli, env.photo, "Is <c000> in this photo?", "a", "ta")
    r = run_cli("concept", "purge", "--tenant", "a", input="n\n")
    assert r.exit_code != 0 and "Erase all concepts" in r.output
    assert "c000" in run_cli("concept", "list", "--tenant", "a").output  # nothing erased without a yes
    r = run_cli("concept", "purge", "--tenant", "a", input="y\n")
    assert r.exit_code == 0, r.output
    assert "No concepts yet" in run_cli("concept", "list", "--tenant", "a").output
    assert len(_thread("ta")) == 2

"""Long threads: checkpoints pruned to the newest N (settings.checkpoints_per_thread), the full transcript
still readable (thread_history, `slc chat --history`), the owner still enforced, erasure takes transcripts.
Large VLM: LangChain fake chat model; small VLM: scripted detector (TEST DOUBLES, see conftest.py).
On-disk size against turns is a benchmark (benchmarks/thread_storage.py), not a test here."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from typer.testing import CliRunner

from slc.agent.settings import get_settings
from slc.graphs.context import Context
from slc.graphs.sessions import aask, ask, open_async_checkpointer, open_async_store, open_graph, thread_history
from slc.graphs.slc import compile_graph
from slc.graphs.threads import ThreadAccessError

TURNS = 12


@pytest.fixture
def small_threads(monkeypatch):
    monkeypatch.setenv("SLC_CHECKPOINTS_PER_THREAD", "3")
    monkeypatch.setenv("SLC_MAX_HISTORY_MESSAGES", "4")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _services(d, make_services, turns: int):
    return make_services(d.Memory([]), d.Detector(), d.Large([d.answer(f"answer {i}") for i in range(turns)]))


def _checkpoints(path, thread: str) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        cps = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = ?", (thread,)).fetchone()[0]
        writes = conn.execute("SELECT count(DISTINCT checkpoint_id) FROM writes WHERE thread_id = ?", (thread,)).fetchone()[0]
    return cps, writes


def test_a_long_thread_keeps_n_checkpoints_and_its_whole_transcript(d, make_services, small_threads):
    services = _services(d, make_services, TURNS)
    with open_graph(services=services) as g:
        for i in range(TURNS):
            assert ask(g, f"question {i}", thread_id="long").answer.text == f"answer {i}"
            cps, writes = _checkpoints(small_threads.sessions_path, "long")
            assert cps <= 3 and writes <= 3
        state = g.get_state({"configurable": {"thread_id": "long"}}).values["messages"]
        assert [m.content for m in state] == ["question 10", "answer 10", "question 11", "answer 11"]
        full = thread_history(g, "long")
    assert [m.content for m in full] == [t for i in range(TURNS) for t in (f"question {i}", f"answer {i}")]
    assert [m.type for m in full[:2]] == ["human", "ai"]
    with open_graph(services=services) as g:  # another connection (another process would see the same)
        assert len(thread_history(g, "long")) == 2 * TURNS
        with pytest.raises(ThreadAccessError):  # the newest checkpoint, always kept, names the owner
            ask(g, "and mine?", thread_id="long", context=Context(tenant="eve"))
        with pytest.raises(ThreadAccessError):
            thread_history(g, "long", context=Context(tenant="eve"))


def test_transcripts_are_per_tenant_and_thread(d, make_services, small_threads):
    services = _services(d, make_services, 3)
    with open_graph(services=services) as g:
        ask(g, "a1", thread_id="t-a", context=Context(tenant="a"))
        ask(g, "b1", thread_id="t-b", context=Context(tenant="b"))
        ask(g, "a2", thread_id="t-a2", context=Context(tenant="a"))
        assert [m.content for m in thread_history(g, "t-a", context=Context(tenant="a"))] == ["a1", "answer 0"]
        assert [m.content for m in thread_history(g, "t-b", context=Context(tenant="b"))] == ["b1", "answer 1"]


def test_async_turns_prune_too(d, make_services, small_threads):
    services = _services(d, make_services, 6)

    async def run() -> list[str]:
        async with open_async_checkpointer(small_threads) as saver, open_async_store(small_threads) as store:
            g = compile_graph(checkpointer=saver, store=store, services=services)
            for i in range(6):
                await aask(g, f"q{i}", thread_id="async")
        with open_graph(services=services) as g:
            return [m.content for m in thread_history(g, "async")]

    assert asyncio.run(run()) == [t for i in range(6) for t in (f"q{i}", f"answer {i}")]
    assert _checkpoints(small_threads.sessions_path, "async")[0] <= 3


def test_erasing_a_tenants_threads_erases_their_transcripts(d, make_services, small_threads):
    from slc.graphs.erasure import erase_tenant
    from slc.graphs.sessions import open_store
    from slc.graphs.transcripts import read_transcript

    services = _services(d, make_services, 2)
    with open_graph(services=services) as g:
        ask(g, "mine", thread_id="gone", context=Context(tenant="a"))
        ask(g, "theirs", thread_id="kept", context=Context(tenant="b"))
    services.memory = lambda tenant=None: type("M", (), {"purge": lambda self: 0})()  # concept memory is not at issue
    erase_tenant(services, "a", threads=True)
    with open_store(small_threads) as store:
        assert read_transcript(store, "a", "gone") == [] and len(read_transcript(store, "b", "kept")) == 2


def test_chat_history_prints_the_whole_transcript(d, make_services, small_threads, monkeypatch):
    from slc.cli import chat as chat_cli
    from slc.cli.app import app

    services = _services(d, make_services, TURNS + 1)
    with open_graph(services=services) as g:
        for i in range(TURNS):
            ask(g, f"question {i}", thread_id="cli")
    monkeypatch.setattr(chat_cli, "checked_services", lambda **kw: services)
    r = CliRunner().invoke(app, ["chat", "--thread", "cli", "--history"], input="")
    assert r.exit_code == 0, r.output
    assert f"resumed, {2 * TURNS} earlier message(s)" in r.stdout
    assert "you> question 0" in r.stdout and "slc> answer 0" in r.stdout and "slc> answer 11" in r.stdout

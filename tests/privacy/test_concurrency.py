"""Concurrent turns on one thread (issue 20, case 5): serialized, or refused with a clear error; never lost.

Three `slc ask ... --thread P` processes started at once, and three Python-API turns on one thread from
three threads (each with its own SQLite connection, as separate processes would have). The large VLM is
the loopback ControlServer in "sleep" mode, so every turn lasts long enough for the others to overlap it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

pytestmark = pytest.mark.integration


def _messages(thread: str) -> list:
    from slc.agent.settings import get_settings
    from slc.graphs.sessions import open_graph

    with open_graph(get_settings()) as g:
        return g.get_state({"configurable": {"thread_id": thread}}).values.get("messages", [])


def test_three_cli_asks_on_one_thread_keep_three_turns(env, concepts):
    env.large.mode, env.large.sleep_s = "sleep", 1.0
    cmd = [sys.executable, "-m", "slc.cli", "ask", str(env.photo), "Is <c000> in this photo?", "--thread", "P",
           "--tenant", "a", "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
             for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1].decode()[-2000:] for o in outs]
    msgs = _messages("P")
    assert len(msgs) == 6, [m.content for m in msgs]  # three questions, three answers: no turn lost


def _concurrent_turns(env, n: int) -> list[BaseException | None]:
    from slc.graphs.context import Context
    from slc.graphs.services import ServiceFactory
    from slc.graphs.sessions import ask, open_graph

    services = ServiceFactory()
    services.memory("a")  # open the tenant's memory once, before the threads race
    start = threading.Barrier(n)
    results: list[BaseException | None] = [None] * n

    def turn(i: int) -> None:
        with open_graph(services=services) as graph:
            start.wait()
            try:
                ask(graph, f"Question {i}: what do you know about <c000>?", thread_id="Q", context=Context(tenant="a"))
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                results[i] = exc

    threads = [threading.Thread(target=turn, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_python_api_turns_on_one_thread_are_serialized(env, concepts):
    env.large.mode, env.large.sleep_s = "sleep", 1.0
    results = _concurrent_turns(env, 3)
    assert results == [None, None, None]
    msgs = _messages("Q")
    assert len(msgs) == 6, [m.content for m in msgs]
    assert sorted(m.content for m in msgs[::2]) == [f"Question {i}: what do you know about <c000>?" for i in range(3)]


def test_a_turn_that_cannot_wait_is_refused_and_nothing_is_lost(env, concepts, monkeypatch, h):
    from slc.agent.errors import SLCError

    monkeypatch.setenv("SLC_TURN_WAIT_S", "0")
    h.reset_services()
    env.large.mode, env.large.sleep_s = "sleep", 1.0
    results = _concurrent_turns(env, 3)
    refused = [r for r in results if r is not None]
    assert len(refused) == 2 and all(isinstance(r, SLCError) and "busy" in str(r) for r in refused), results
    assert len(_messages("Q")) == 2  # the one answered turn is kept; the refused ones were never answered

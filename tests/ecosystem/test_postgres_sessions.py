"""Postgres sessions (issue 17, case 4) against a real Postgres 15 server the tests start (initdb + pg_ctl).

Every surface that keeps sessions, with ``sessions_url`` pointing at the server: the Python API (sync and
async), the answer tool, the CLI (``slc ask --thread`` then ``slc chat --thread``), and erasure. Real
memory, small VLM and photo store (conftest.py); the large VLM is the loopback ControlServer, which
records what each turn sent (so a follow-up can be seen to carry the earlier turn). Skipped, with the
reason, where Postgres or the ``postgres`` extra is missing.
"""

from __future__ import annotations

import asyncio

import pytest

from slc.graphs.context import Context

pytestmark = pytest.mark.integration

A = Context(tenant="a")
REPLY_TEXT = "Demo model: this reply shows the plumbing"


@pytest.fixture(scope="module")
def postgres_url():
    try:
        import langgraph.checkpoint.postgres  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("Postgres sessions need the postgres extra: pip install -e '.[postgres]'")
    from slc.testing.postgres import PostgresUnavailableError, local_postgres

    try:
        server = local_postgres()
        url = server.__enter__()
    except PostgresUnavailableError as exc:
        pytest.skip(f"no local Postgres server can be started here: {exc}")
    yield url
    server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def pg(real, postgres_url):
    """The module's real services with sessions in Postgres."""
    from slc.graphs.services import ServiceFactory

    settings = real.settings.model_copy(update={"sessions_url": postgres_url})
    services = ServiceFactory(settings, small_vlm=real.services.small_vlm())
    yield services
    services.close()


def _checkpoints(url: str, thread: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s", (thread,)).fetchone()[0]


def _carried_earlier_turn(large, since: int) -> bool:
    return any(REPLY_TEXT in str(m.get("content")) for req in large.requests[since:] for m in req["messages"]
               if m.get("role") == "assistant")


def test_sessions_live_in_postgres_and_belong_to_their_tenant(real, pg, postgres_url):
    from slc.graphs.sessions import ask, open_graph, thread_history
    from slc.graphs.threads import ThreadAccessError

    with open_graph(services=pg) as graph:
        first = ask(graph, "Is <c000> in this photo?", real.photo, thread_id="pg-1", context=A, settings=pg.settings)
        seen = len(real.large.requests)
        ask(graph, "What did I ask you?", thread_id="pg-1", context=A, settings=pg.settings)
        assert _carried_earlier_turn(real.large, seen)
    assert _checkpoints(postgres_url, "pg-1") > 0 and not pg.settings.sessions_path.exists()

    with open_graph(services=pg) as graph:  # a new connection: the session is still there
        history = thread_history(graph, "pg-1", context=A, settings=pg.settings)
        assert len(history) == 4 and history[0].additional_kwargs["image"] == first.image
        with pytest.raises(ThreadAccessError, match="another tenant"):
            ask(graph, "What did a ask?", thread_id="pg-1", context=Context(tenant="eve"), settings=pg.settings)


def test_async_sessions_in_postgres(real, pg, postgres_url):
    from slc.graphs.sessions import aask, open_async_checkpointer
    from slc.graphs.slc import compile_graph

    async def two_turns() -> list[str]:
        async with open_async_checkpointer(pg.settings) as saver:
            graph = compile_graph(checkpointer=saver, services=pg)
            await aask(graph, "Is <c001> in this photo?", real.photo, thread_id="pg-async", context=A, settings=pg.settings)
            seen = len(real.large.requests)
            await aask(graph, "And before?", thread_id="pg-async", context=A, settings=pg.settings)
            assert _carried_earlier_turn(real.large, seen)
            state = await graph.aget_state({"configurable": {"thread_id": "pg-async"}})
            return [m.type for m in state.values["messages"]]

    assert asyncio.run(two_turns()) == ["human", "ai", "human", "ai"]
    assert _checkpoints(postgres_url, "pg-async") > 0


def test_the_answer_tool_keeps_its_sessions_in_postgres(real, pg, postgres_url):
    from slc.tools.answer import TOOL_NAME, make_answer_tool

    tool = make_answer_tool(services=pg, context=A)
    call = {"type": "tool_call", "id": "1", "name": TOOL_NAME,
            "args": {"question": "Is <c000> in this photo?", "image_path": str(real.photo)}}
    first = tool.invoke(call)
    thread = first.artifact["thread_id"]
    seen = len(real.large.requests)
    again = tool.invoke({**call, "args": {"question": "Where?", "thread_id": thread}})
    assert again.status == "success" and again.artifact["thread_id"] == thread
    assert _carried_earlier_turn(real.large, seen) and _checkpoints(postgres_url, thread) > 0


def test_the_cli_resumes_a_postgres_session(real, postgres_url, monkeypatch):
    from typer.testing import CliRunner

    from slc.agent.settings import get_settings
    from slc.cli.app import app

    s = real.settings
    for key, value in {"SLC_DATA_DIR": s.data_dir, "SLC_TENANT": "a", "SLC_SESSIONS_URL": postgres_url,
                       "SLC_SMALL__MODEL": s.small.model, "SLC_SMALL__MAX_NEW_TOKENS": 16,
                       "SLC_IMAGE_ENCODER": s.image_encoder, "SLC_LARGE__BASE_URL": s.large.base_url,
                       "SLC_LARGE__MODEL": "control", "SLC_LARGE__MAX_RETRIES": 0}.items():
        monkeypatch.setenv(key, str(value))
    get_settings.cache_clear()
    runner = CliRunner()
    r = runner.invoke(app, ["ask", str(real.photo), "Is <c000> in this photo?", "--thread", "pg-cli", "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["chat", "--thread", "pg-cli"], input="What did I ask?\n")
    assert r.exit_code == 0, r.output
    assert "session pg-cli: resumed, 2 earlier message(s)" in r.stdout
    assert _checkpoints(postgres_url, "pg-cli") > 0


def test_erasing_a_tenant_deletes_its_postgres_threads_only(real, pg, postgres_url):
    from slc.graphs.erasure import erase_tenant
    from slc.graphs.sessions import ask, open_graph

    with open_graph(services=pg) as graph:
        ask(graph, "Hello, remember me?", thread_id="pg-eve", context=Context(tenant="eve"), settings=pg.settings)
        ask(graph, "Is <c000> known?", thread_id="pg-a-kept", context=A, settings=pg.settings)
    erased = erase_tenant(pg, "eve", threads=True)
    assert erased.threads == ["pg-eve"]
    assert _checkpoints(postgres_url, "pg-eve") == 0 and _checkpoints(postgres_url, "pg-a-kept") > 0


def test_long_postgres_threads_keep_n_checkpoints_and_the_whole_transcript(real, pg, postgres_url):
    """Pruning on Postgres (checkpoints, writes and blobs no kept checkpoint uses); transcript in PostgresStore."""
    import psycopg

    from slc.graphs.sessions import aask, ask, open_async_checkpointer, open_async_store, open_graph, thread_history

    keep = pg.settings.checkpoints_per_thread = 2
    with open_graph(services=pg) as graph:
        for i in range(5):
            ask(graph, f"Question {i}?", thread_id="pg-long", context=A, settings=pg.settings)
        assert _checkpoints(postgres_url, "pg-long") == keep
        history = thread_history(graph, "pg-long", context=A, settings=pg.settings)
        assert [m.content for m in history[::2]] == [f"Question {i}?" for i in range(5)]

    async def async_turns() -> None:
        async with open_async_checkpointer(pg.settings) as saver, open_async_store(pg.settings) as store:
            from slc.graphs.slc import compile_graph

            graph = compile_graph(checkpointer=saver, store=store, services=pg)
            for i in range(3):
                await aask(graph, f"Async {i}?", thread_id="pg-long-async", context=A, settings=pg.settings)

    asyncio.run(async_turns())
    assert _checkpoints(postgres_url, "pg-long-async") == keep
    with psycopg.connect(postgres_url) as conn:
        versions = conn.execute("SELECT count(*) FROM checkpoint_blobs WHERE thread_id = 'pg-long'").fetchone()[0]
    assert versions <= 2 * keep * 4  # a few channels per kept checkpoint, not every turn's
    pg.settings.checkpoints_per_thread = 10

"""Sessions on SQLite: thread_id keyed checkpoints, images by hash (never base64), stream + astream_events.
Large VLM: LangChain fake chat model; small VLM: scripted detector (TEST DOUBLES, see conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import sqlite3

from slc.agent.settings import get_settings
from slc.graphs.context import Context
from slc.graphs.sessions import ask, open_async_checkpointer, open_graph, turn_input
from slc.graphs.tracing import run_config


def test_sqlite_session_two_turns_and_image_by_hash(d, make_services, photo, concept_factory, store):
    bo = concept_factory("bo", "dog")
    det = d.Detector({("bo", 0): "present"})
    large = d.Large([d.verdicts({"bo": "agree"}), d.answer("Yes, <bo> is here.", ["bo"]), d.answer("He is golden.", ["bo"])])
    services = make_services(d.Memory([bo], image_neighbours=["bo"]), det, large)
    ctx = Context()
    settings = get_settings()
    with open_graph(settings, services=services) as g:
        r1 = ask(g, "Is <bo> here?", photo, thread_id="s1", context=ctx)
        r2 = ask(g, "What colour is he?", None, thread_id="s1", context=ctx)
        assert r1.answer.text == "Yes, <bo> is here." and r2.answer.text == "He is golden."
        msgs = g.get_state({"configurable": {"thread_id": "s1"}}).values["messages"]
        assert [m.content for m in msgs] == ["Is <bo> here?", "Yes, <bo> is here.", "What colour is he?", "He is golden."]
        assert msgs[0].additional_kwargs["image"] == r1.image and store.exists(r1.image)
        other = g.get_state({"configurable": {"thread_id": "other"}}).values
        assert other == {}
    # reopening the file resumes the thread (a new process would see the same)
    with open_graph(settings, services=services) as g:
        assert len(g.get_state({"configurable": {"thread_id": "s1"}}).values["messages"]) == 4
    # the photo's bytes never went into the checkpoint DB, only its hash
    raw = b"".join(
        bytes(v) for row in sqlite3.connect(settings.sessions_path).execute("select checkpoint, metadata from checkpoints")
        for v in row if v
    ) + b"".join(bytes(r[0]) for r in sqlite3.connect(settings.sessions_path).execute("select value from writes") if r[0])
    png = store.path(r1.image).read_bytes()
    assert r1.image.encode() in raw
    assert base64.b64encode(png)[:200] not in raw and b"data:image" not in raw


def test_stream_updates_in_node_order(d, make_services, photo, concept_factory):
    bo = concept_factory("bo", "dog")
    large = d.Large([d.verdicts({"bo": "disagree"}), d.verdicts({"bo": "agree"}), d.answer("ok")])
    services = make_services(d.Memory([bo], image_neighbours=["bo"]),
                             d.Detector({("bo", 0): "present", ("bo", 1): "absent"}), large)
    ctx = Context()
    with open_graph(get_settings(), services=services) as g:
        inp = turn_input("Is <bo> here?", photo)
        nodes = [next(iter(chunk)) for chunk in g.stream(inp, config=run_config("st", ctx), context=ctx, stream_mode="updates")]
    assert nodes == ["recall", "personalize", "reflect", "personalize", "reflect", "reason"]


def test_astream_events_with_async_sqlite(d, make_services, photo, concept_factory):
    bo = concept_factory("bo", "dog")
    large = d.Large([d.verdicts({"bo": "agree"}), d.answer("Yes.", ["bo"])])
    services = make_services(d.Memory([bo], image_neighbours=["bo"]), d.Detector({("bo", 0): "present"}), large)
    ctx = Context()

    async def run():
        from slc.graphs.slc import compile_graph

        async with open_async_checkpointer(get_settings()) as saver:
            g = compile_graph(checkpointer=saver, services=services)
            inp = turn_input("Is <bo> here?", photo)
            events = [e async for e in g.astream_events(inp, config=run_config("ae", ctx), context=ctx, version="v2")]
            state = await g.aget_state({"configurable": {"thread_id": "ae"}})
            return events, state

    events, state = asyncio.run(run())
    starts = [e["name"] for e in events if e["event"] == "on_chain_start"]
    for node in ("recall", "personalize", "reflect", "reason"):
        assert node in starts
    models = [e for e in events if e["event"] == "on_chat_model_end"]
    assert [e["metadata"]["langgraph_node"] for e in models] == ["reflect", "reason"]
    assert models[0]["metadata"]["concepts"] == ["bo"] and models[0]["metadata"]["round"] == 0
    assert state.values["answer"].text == "Yes."


def test_first_turns_at_once_on_a_new_sessions_file_all_open_the_store(tmp_path):
    """LangGraph's SqliteStore.setup applies its migrations unguarded; several first turns at once (threads or
    processes) on a new file used to fail ("duplicate column name", "UNIQUE constraint failed", and "database is
    locked" from switching the new file to WAL)."""
    import threading

    from slc.graphs.sessions import open_checkpointer, open_store

    for trial in range(20):
        db = tmp_path / f"s{trial}.sqlite"
        errors: list[BaseException] = []

        def first_turn() -> None:
            try:
                with open_checkpointer(path=db), open_store(path=db) as store:
                    store.put(("t", "transcripts", "x"), "k", {"v": 1})
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=first_turn) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []

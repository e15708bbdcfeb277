"""Photos inside chat messages (issue 17, case 1): what Studio's chat and Agent Chat UI send, size bounds.

TEST DOUBLES (declared): the graph's logic is under test, so the large VLM is the recording fake chat model,
the small VLM the scripted detector and memory the fake one (conftest.py); the photo store is the real
ImageStore. The same input through a real LangGraph Server is tests/ecosystem/test_langgraph_sdk.py.
"""

from __future__ import annotations

import base64
import io
import json

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from slc.agent.errors import InvalidImageError


def _png(d, seed: int = 42, size: tuple[int, int] = (80, 60)) -> bytes:
    buf = io.BytesIO()
    d.make_image(seed, size).save(buf, format="PNG")
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


SHAPES = {
    "langchain-v1-base64": lambda b: {"type": "image", "base64": b, "mime_type": "image/png"},
    "langchain-v1-data-url": lambda b: {"type": "image", "url": f"data:image/png;base64,{b}"},
    "langchain-v0-source-type": lambda b: {"type": "image", "source_type": "base64", "data": b, "mime_type": "image/png"},
    "agent-chat-ui": lambda b: {"type": "image", "mimeType": "image/png", "data": b, "metadata": {"name": "bo.png"}},
    "openai-image-url": lambda b: {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b}"}},
    "openai-image-url-string": lambda b: {"type": "image_url", "image_url": f"data:image/png;base64,{b}"},
    "anthropic-source": lambda b: {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b}},
}


@pytest.fixture
def bo_run(d, concept_factory, make_run, store):
    """A graph whose memory finds <bo> near any photo, the detector says present, the verifier agrees."""

    def make(sessions: bool = False, **context):
        memory = d.Memory([concept_factory("bo")], image_neighbours=["bo"])
        det = d.Detector({("bo", 0): "present"})
        large = d.Large([d.verdicts({"bo": "agree"}), d.answer("Yes, <bo> is here.", ["bo"]),
                         d.answer("He was on the left.", ["bo"])])
        graph, ctx = make_run(memory, det, large, checkpointer=InMemorySaver() if sessions else None,
                                     **context)
        return graph, ctx, det, large

    return make


def _calls_with_a_photo(large) -> int:
    return sum(any(isinstance(p, dict) and p.get("type") == "image_url" for m in call if isinstance(m.content, list)
                   for p in m.content) for call in large.calls)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_photo_in_a_chat_message_is_the_turns_photo(shape, d, bo_run, store):
    graph, ctx, det, large = bo_run(sessions=True)
    data = _png(d)
    b64 = _b64(data)
    message = {"role": "user", "content": [{"type": "text", "text": "Is <bo> in this photo?"}, SHAPES[shape](b64)]}
    cfg = {"configurable": {"thread_id": f"t-{shape}"}}
    out = graph.invoke({"messages": [message]}, cfg, context=ctx)

    assert det.calls and det.calls[0][1][0].name == "bo"  # the small VLM looked at the photo
    assert out["answer"].text == "Yes, <bo> is here." and out["final"][0].present == "true"
    assert len(large.calls) == _calls_with_a_photo(large) == 2  # verify + answer calls both carried the photo
    asked = [m for m in out["messages"] if isinstance(m, HumanMessage)]
    assert len(asked) == 1 and asked[0].content == "Is <bo> in this photo?"
    sha = asked[0].additional_kwargs["image"]
    assert store.exists(sha)
    checkpoint = json.dumps(graph.get_state(cfg).values, default=str)
    assert b64[:200] not in checkpoint and "base64" not in checkpoint  # only the hash is kept

    # a follow-up turn without a photo: text only, the history names the photo by hash
    out = graph.invoke({"messages": [{"role": "user", "content": "Where was he?"}]}, cfg, context=ctx)
    assert out["answer"].text == "He was on the left." and out["image"] is None
    assert [m.additional_kwargs.get("image") for m in out["messages"] if isinstance(m, HumanMessage)] == [sha, None]


def test_the_message_photo_and_the_image_input_must_agree(d, bo_run, store):
    graph, ctx, _, _ = bo_run()
    one, other = _b64(_png(d, 1)), _b64(_png(d, 2))
    msg = HumanMessage([{"type": "text", "text": "Is <bo> here?"}, SHAPES["langchain-v1-base64"](one)])
    with pytest.raises(InvalidImageError, match="two different photos"):
        graph.invoke({"messages": [msg], "image": f"data:image/png;base64,{other}"}, context=ctx)
    out = graph.invoke({"messages": [msg], "image": f"data:image/png;base64,{one}"}, context=ctx)  # the same photo
    assert out["answer"].text == "Yes, <bo> is here."


@pytest.mark.parametrize("block, error", [
    ({"type": "image", "url": "https://example.com/bo.png"}, "not fetched"),
    ({"type": "image_url", "image_url": {"url": "https://example.com/bo.png"}}, "not fetched"),
    ({"type": "image", "file_id": "file-123"}, "without its content"),
    ({"type": "file", "base64": "JVBERi0xLjQK", "mime_type": "application/pdf"}, "only photos are read"),
    ({"type": "image", "base64": "bm90IGFuIGltYWdl", "mime_type": "image/png"}, "Invalid image"),
    ({"type": "image", "base64": "%%%%not-base64%%%%", "mime_type": "image/png"}, "not base64"),
])
def test_unusable_message_photos_are_refused_clearly_and_store_nothing(block, error, d, bo_run, store):
    graph, ctx, det, large = bo_run()
    before = set(store)
    msg = HumanMessage([{"type": "text", "text": "Is <bo> here?"}, block])
    with pytest.raises(InvalidImageError, match=error) as err:
        graph.invoke({"messages": [msg]}, context=ctx)
    assert "example.com" not in str(err.value) and "bm90IGFu" not in str(err.value)  # nothing of the input echoed
    assert det.calls == [] and large.calls == [] and set(store) == before


def test_two_photos_in_one_message_are_refused(d, bo_run, store):
    graph, ctx, det, _ = bo_run()
    before = set(store)
    msg = HumanMessage([{"type": "text", "text": "Which one is <bo>?"},
                        SHAPES["langchain-v1-base64"](_b64(_png(d, 1))), SHAPES["openai-image-url"](_b64(_png(d, 2)))])
    with pytest.raises(InvalidImageError, match="one message carries 2 photos"):
        graph.invoke({"messages": [msg]}, context=ctx)
    assert set(store) == before and det.calls == []


def _large_photo(d) -> bytes:
    return _png(d, 3, (400, 300))  # ~360 kB of noise: over a 100 kB bound


@pytest.mark.parametrize("how", ["message-block", "data-url", "bare-base64", "bytes", "path"])
def test_photos_over_the_size_bound_are_refused_before_decoding(how, d, bo_run, store, monkeypatch, tmp_path):
    from slc.agent.settings import get_settings

    monkeypatch.setenv("SLC_MAX_PHOTO_BYTES", "100000")
    get_settings.cache_clear()
    graph, ctx, det, _ = bo_run()
    graph.services._settings = get_settings()
    before = set(store)
    data = _large_photo(d)
    assert len(data) > 100_000
    path = tmp_path / "big.png"
    path.write_bytes(data)
    image = {"data-url": f"data:image/png;base64,{_b64(data)}", "bare-base64": _b64(data), "bytes": data,
             "path": path}.get(how)
    inp = ({"messages": [HumanMessage([{"type": "text", "text": "Is <bo> here?"}, SHAPES["agent-chat-ui"](_b64(data))])]}
           if how == "message-block" else {"question": "Is <bo> here?", "image": image})
    with pytest.raises(InvalidImageError, match="over the 0.1 MB a photo may have .*SLC_MAX_PHOTO_BYTES"):
        graph.invoke(inp, context=ctx)
    assert set(store) == before and det.calls == []
    small = _png(d, 4)  # under the bound: the same route works
    ok = graph.invoke({"question": "Is <bo> here?", "image": f"data:image/png;base64,{_b64(small)}"}, context=ctx)
    assert ok["answer"].text == "Yes, <bo> is here."


def test_bare_base64_is_a_photo_and_a_path_stays_a_path(d):
    from slc.graphs.photos import photo_kind

    assert photo_kind(_b64(_png(d))) == "base64"
    assert photo_kind("a" * 64) == "sha256"
    assert photo_kind("photos/holiday/IMG1234") == "path"  # base64 letters, but no image file in it
    assert photo_kind("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2") == "path"


def test_a_long_string_that_is_no_photo_is_refused_without_being_echoed(d, bo_run, store):
    graph, ctx, det, _ = bo_run()
    urlsafe = base64.urlsafe_b64encode(_png(d)).decode()  # a photo in a dialect we do not read
    with pytest.raises(InvalidImageError, match="neither a path") as err:
        graph.invoke({"question": "Is <bo> here?", "image": urlsafe}, context=ctx)
    assert urlsafe[:64] not in str(err.value) and det.calls == []


@pytest.mark.parametrize("how", ["question", "message", "message-with-photo", "earlier-message"])
def test_an_overlong_question_is_refused_before_anything_is_stored(how, d, bo_run, store):
    """Issue 15: the graph bounds the question it is sent (the ``question`` input and every human message's
    text) at settings.max_question_chars; a refused run stores neither its photo nor a checkpoint."""
    from slc.agent.errors import QuestionTooLongError

    graph, ctx, det, large = bo_run(sessions=True)
    limit = graph.services.settings.max_question_chars
    at = ("Is <bo> here? " + "x" * limit)[:limit]
    photo = SHAPES["langchain-v1-base64"](_b64(_png(d, 7)))

    def turn(text: str) -> dict:
        if how == "question":
            return {"question": text, "image": f"data:image/png;base64,{_b64(_png(d, 7))}"}
        if how == "earlier-message":  # a client sending a history whose earlier human message is the long one
            return {"messages": [HumanMessage(text), HumanMessage([{"type": "text", "text": "Is <bo> here?"}, photo])]}
        return {"messages": [HumanMessage([{"type": "text", "text": text}] + ([photo] if how == "message-with-photo" else []))]}

    cfg = {"configurable": {"thread_id": f"long-{how}"}}
    before = set(store)
    with pytest.raises(QuestionTooLongError, match=f"{limit + 1:,} characters, the limit is {limit:,} .*SLC_MAX_QUESTION_CHARS"):
        graph.invoke(turn(at + "?"), cfg, context=ctx)
    assert set(store) == before and det.calls == [] and large.calls == []
    assert graph.get_state(cfg).values == {}  # no checkpoint of the refused turn
    out = graph.invoke(turn(at), cfg, context=ctx)  # at the limit: answered (no photo: no verifier call)
    assert out["answer"].text and large.calls

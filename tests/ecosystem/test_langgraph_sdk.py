"""The LangGraph Server route end to end (issue 17, cases 1 and 2): ``langgraph dev`` serving this repository's
langgraph.json, driven by the official ``langgraph_sdk`` client the way Studio's chat and Agent Chat UI
drive it: a thread, a photo turn sent as a chat message with an image block (streamed node updates), a
follow-up turn, the final state; the context schema Studio renders; a photo in the ``image`` field; bad
photos refused with a message and never written to the server's log.

Real everything inside the server (memory on embedded Chroma with tiny CLIP + MiniLM, the tiny small VLM,
the photo store, the in-memory server's checkpointer); the large VLM is the loopback ControlServer
(conftest.py), whose recorded requests show which photo and which history each large-VLM call carried.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "token-of-a"
PLAIN_JSON = {"string", "integer", "number", "boolean", "null"}


@pytest.fixture(scope="module")
def server(tiny_vlm_path, tiny_clip_path, control_server, tmp_path_factory):
    """`langgraph dev` on loopback; tenant "a" (token TOKEN) holds c000 and c001, registered before it starts."""
    from slc.agent.settings import Settings
    from slc.memory.store import ConceptMemory
    from slc.testing.langgraph_server import langgraph_dev, server_env

    from .conftest import world_images

    root = tmp_path_factory.mktemp("sdk")
    slc = {"SLC_DATA_DIR": str(root / "data"), "SLC_SMALL__MODEL": str(tiny_vlm_path("idefics3")),
           "SLC_SMALL__MAX_NEW_TOKENS": "16", "SLC_IMAGE_ENCODER": str(tiny_clip_path),
           "SLC_LARGE__BASE_URL": control_server.url, "SLC_LARGE__MODEL": "control", "SLC_LARGE__MAX_RETRIES": "0",
           "SLC_AUTH__TOKENS": json.dumps({"a": TOKEN})}
    images = world_images(2)
    with ConceptMemory(Settings(data_dir=root / "data", image_encoder=str(tiny_clip_path)), tenant="a") as memory:
        for name, (wc, refs) in images.items():
            memory.add(name, refs, description=wc.description, category=wc.tree.root)
    photo = root / "photo.png"
    images["c000"][1][1].save(photo)
    with langgraph_dev(ROOT, root / "server", server_env(**slc)) as dev:
        dev.photo_b64 = base64.b64encode(photo.read_bytes()).decode()
        yield dev


@pytest.fixture
def client(server):
    from langgraph_sdk import get_sync_client

    return get_sync_client(url=server.url, headers={"Authorization": f"Bearer {TOKEN}"})


def _updates(client, thread: str, payload: dict) -> list[tuple[str, dict]]:
    """(node, update) of every node of one run, in order, as ``runs.stream(stream_mode="updates")`` gives them."""
    parts = list(client.runs.stream(thread, "slc", input=payload, stream_mode="updates"))
    errors = [p.data for p in parts if p.event == "error"]
    assert not errors, errors
    return [(node, update) for p in parts if p.event == "updates" for node, update in p.data.items()]


def _photos_sent(large, since: int) -> list[str]:
    return [part["image_url"]["url"] for req in large.requests[since:] for m in req["messages"]
            if isinstance(m.get("content"), list) for part in m["content"] if part.get("type") == "image_url"]


def test_a_chat_client_sends_a_photo_in_its_message_and_follows_up(server, client, control_server):
    thread = client.threads.create()["thread_id"]
    seen = len(control_server.requests)
    photo_turn = {"messages": [{"type": "human", "content": [
        {"type": "text", "text": "Is <c000> in this photo?"},
        {"type": "image", "mimeType": "image/png", "data": server.photo_b64, "metadata": {"name": "photo.png"}},
    ]}]}
    updates = _updates(client, thread, photo_turn)
    assert [node for node, _ in updates] == ["recall", "personalize", "reflect", "personalize", "reflect", "reason"]
    recall = updates[0][1]
    assert "c000" in {c["concept"]["name"] for c in recall["candidates"]} and "image" in recall["candidates"][0]["matched_by"]
    assert updates[-1][1]["answer"]["text"].startswith("Demo model")
    assert len(_photos_sent(control_server, seen)) >= 2  # the verifier and the answerer both saw the photo

    seen = len(control_server.requests)
    follow_up = _updates(client, thread, {"messages": [{"type": "human", "content": "What did I ask you?"}]})
    assert [node for node, _ in follow_up] == ["recall", "reason"]
    history = control_server.requests[seen]["messages"]
    assert any(m["role"] == "user" and "Is <c000> in this photo?" in str(m["content"]) for m in history)
    assert _photos_sent(control_server, seen) == []  # a text turn: the photo is not sent again

    state = client.threads.get_state(thread)
    messages = state["values"]["messages"]
    assert [m["type"] for m in messages] == ["human", "ai", "human", "ai"]
    assert messages[0]["content"] == "Is <c000> in this photo?"
    assert re.fullmatch(r"[0-9a-f]{64}", messages[0]["additional_kwargs"]["image"])
    assert server.photo_b64[:100] not in json.dumps(state)  # the photo is kept by its hash only
    assert server.photo_b64[:100] not in server.log()


def test_a_photo_in_the_image_field_and_bad_photos(server, client):
    thread = client.threads.create()["thread_id"]
    out = client.runs.wait(thread, "slc", input={"question": "Is <c000> in this photo?",
                                                 "image": f"data:image/png;base64,{server.photo_b64}"})
    assert out["answer"]["text"] and "c000" in {c["concept"]["name"] for c in out["candidates"]}

    secret_url = "https://example.com/private/bo.png?token=abc123"
    bad = {"messages": [{"type": "human", "content": [{"type": "text", "text": "And this?"},
                                                      {"type": "image_url", "image_url": {"url": secret_url}}]}]}
    parts = list(client.runs.stream(client.threads.create()["thread_id"], "slc", input=bad, stream_mode="updates"))
    errors = [p.data for p in parts if p.event == "error"]
    assert errors and "not fetched" in json.dumps(errors)
    url_encoded = quote(server.photo_b64, safe="")  # a photo in a form that is not read
    not_an_image = base64.b64encode(b"%PDF-1.4 a document, not a photo " * 20).decode()
    for image in (url_encoded, not_an_image):
        out = list(client.runs.stream(client.threads.create()["thread_id"], "slc", stream_mode="updates",
                                      input={"question": "Is <c000> here?", "image": image}))
        errors = [p.data for p in out if p.event == "error"]
        assert errors and "Invalid image" in json.dumps(errors)
    log = server.log()
    assert "abc123" not in log and url_encoded[:100] not in log and not_an_image[:100] not in log


def test_studio_sees_plain_json_fields_only(client):
    assistant = client.assistants.create(graph_id="slc")["assistant_id"]  # the caller's own (auth filters by owner)
    schemas = client.assistants.get_schemas(assistant)
    context = schemas["context_schema"]
    assert set(context["properties"]) == {"tenant", "reflection_rounds", "reflect", "reflection_style", "recheck_absent",
                                          "report_style", "redact_images", "max_history_messages"}
    for name, prop in context["properties"].items():
        kinds = {t["type"] for t in prop.get("anyOf", [prop])}
        assert kinds <= PLAIN_JSON, (name, prop)
    assert "$defs" not in context  # no nested objects (settings, services) behind a reference
    assert {"question", "image", "messages"} <= set(schemas["input_schema"]["properties"])
    config_fields = set(((schemas.get("config_schema") or {}).get("properties") or {}))
    assert not config_fields & {"settings", "services", "memory", "small_vlm", "large_vlm"}


def test_every_route_needs_the_token(server):
    from langgraph_sdk import get_sync_client

    with pytest.raises(httpx.HTTPStatusError) as err:
        get_sync_client(url=server.url).threads.create()
    assert err.value.response.status_code == 401

"""The answer tool and memory tools, alone and inside ``langchain.agents.create_agent``.

TEST DOUBLES (declared): the agent's own model is ``ToolCallingFakeModel`` (LangChain's
GenericFakeChatModel that accepts bind_tools and replays scripted tool calls); the SLC graph's large VLM is
the recording fake chat model and its small VLM the scripted detector (conftest.py). Memory is the REAL
ConceptMemory on embedded Chroma (tiny CLIP + MiniLM).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from slc.graphs.services import ServiceFactory
from slc.graphs.slc import compile_graph
from slc.tools.answer import TOOL_NAME, make_answer_tool
from slc.tools.memory_tools import make_memory_tools


@pytest.fixture(autouse=True)
def photos_allowed(tmp_path, monkeypatch):
    """The tools read photo paths only under the allowed roots: this test's folder is one."""
    from slc.agent.settings import get_settings

    monkeypatch.setenv("SLC_PRIVACY__PHOTO_ROOTS", json.dumps([str(tmp_path)]))
    get_settings.cache_clear()


class ToolCallingFakeModel(GenericFakeChatModel):
    """TEST DOUBLE: a fake chat model that 'supports' tools by replaying scripted tool-call messages."""

    def bind_tools(self, tools: Any, **kw: Any) -> "ToolCallingFakeModel":
        return self


def _call(name: str, args: dict, i: int) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call-{i}", "type": "tool_call"}])


def test_agent_remembers_then_answers_then_forgets(d, store, real_memory, tmp_path):
    ref = tmp_path / "bo.png"
    d.make_image(7).save(ref)
    photo = tmp_path / "photo.png"
    d.make_image(7).save(photo)  # same picture: the real image recall finds <bo>
    det = d.Detector({("bo", 0): "present"})
    large = d.Large([d.verdicts({"bo": "agree"}), d.answer("Yes, <bo> is in the photo.", ["bo"])])
    services = ServiceFactory(memory=real_memory, small_vlm=det, large_vlm=large, image_store=store)
    tools = [make_answer_tool(compile_graph(services=services), services=services), *make_memory_tools(services=services)]
    agent_model = ToolCallingFakeModel(messages=iter([
        _call("remember_concept", {"name": "bo", "image_paths": [str(ref)], "description": "my golden retriever",
                                   "category": "dog"}, 1),
        _call(TOOL_NAME, {"question": "Is <bo> in this photo?", "image_path": str(photo)}, 2),
        _call("recall_concepts", {"query": "tell me about bo"}, 3),
        _call("forget_concept", {"name": "bo"}, 4),
        AIMessage(content="Done: <bo> was in your photo."),
    ]))
    agent = create_agent(agent_model, tools=tools)
    out = agent.invoke({"messages": [HumanMessage("This is my dog bo; is he in photo.png? Then forget him.")]})
    tool_msgs = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert [m.name for m in tool_msgs] == ["remember_concept", TOOL_NAME, "recall_concepts", "forget_concept"]
    assert "Remembered <bo> (dog)" in tool_msgs[0].content
    assert "Yes, <bo> is in the photo." in tool_msgs[1].content and "concepts used: <bo>" in tool_msgs[1].content
    art = tool_msgs[1].artifact
    assert art["final"][0]["present"] == "true" and art["large_vlm_calls"] == 2
    assert det.calls and det.calls[0][1][0].name == "bo" and det.calls[0][1][0].category == "dog"
    assert "<bo>: dog; my golden retriever" in tool_msgs[2].content
    assert tool_msgs[3].content == "Forgot <bo>." and real_memory.list() == []
    assert out["messages"][-1].content == "Done: <bo> was in your photo."


def test_tool_errors_reach_the_agent_as_messages(d, store, real_memory, tmp_path):
    services = ServiceFactory(memory=real_memory, small_vlm=d.Detector(), large_vlm=d.Large([]), image_store=store)
    answer_tool = make_answer_tool(compile_graph(services=services), services=services)
    bad = tmp_path / "not-an-image.jpg"
    bad.write_text("hello")
    msg = answer_tool.invoke({"type": "tool_call", "id": "x", "name": TOOL_NAME,
                              "args": {"question": "Is bo here?", "image_path": str(bad)}})
    assert msg.status == "error" and "not-an-image.jpg" in msg.content and "not an image" in msg.content
    forget = make_memory_tools(services=services)[2]
    msg = forget.invoke({"type": "tool_call", "id": "y", "name": "forget_concept", "args": {"name": "nobody"}})
    assert msg.status == "error" and "nobody" in msg.content


def test_answer_tool_refuses_an_overlong_question_and_answers_one_at_the_limit(d, store, real_memory, tmp_path):
    """Issue 15: a host's LLM may send any text; over settings.max_question_chars it gets a message naming the
    limit (no session, no photo stored), at the limit an answer."""
    services = ServiceFactory(memory=real_memory, small_vlm=d.Detector(), large_vlm=d.Large([d.answer("No concept here.")]),
                              image_store=store)
    graph = compile_graph(services=services)
    tool = make_answer_tool(graph, services=services)
    photo = tmp_path / "photo.png"
    d.make_image(5).save(photo)
    limit = services.settings.max_question_chars
    at = ("What is in this photo? " + "y" * limit)[:limit]
    before = set(store)
    msg = tool.invoke({"type": "tool_call", "id": "q", "name": TOOL_NAME,
                       "args": {"question": at + "?", "image_path": str(photo), "thread_id": "long"}})
    assert msg.status == "error" and f"Question too long: {limit + 1:,} characters, the limit is {limit:,}" in msg.content
    assert "SLC_MAX_QUESTION_CHARS" in msg.content and "yyyyyyyyyy" not in msg.content
    assert set(store) == before
    msg = tool.invoke({"type": "tool_call", "id": "a", "name": TOOL_NAME,
                       "args": {"question": at, "image_path": str(photo), "thread_id": "long"}})
    assert msg.status != "error" and "No concept here." in msg.content and msg.artifact["thread_id"] == "long"

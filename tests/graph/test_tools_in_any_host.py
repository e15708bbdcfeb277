"""Tools that behave in any host (issue 17, case 3, and the host-agent warning of case 5).

A host agent must never see an exception out of an slc tool, must get a session id it can pass back, must
be told that the deleting tool is for explicit requests only, and must not be warned about our checkpoint
policy. TEST DOUBLES (declared): the host's model replays scripted tool calls (LangChain's
GenericFakeChatModel); the SLC graph's large VLM is the recording fake, its small VLM the scripted detector
and its memory the fake one (conftest.py); the photo store and the SQLite session checkpointer are real.
langchain's own standard tool tests on the real services are tests/ecosystem/test_standard_tests.py.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from slc.agent.detection import ConceptQuery
from slc.agent.errors import ModelOutputError
from slc.graphs.services import ServiceFactory
from slc.tools.answer import TOOL_NAME, make_answer_tool
from slc.tools.memory_tools import make_memory_tools
from slc.tools.personalize import PersonalizeTool


@pytest.fixture(autouse=True)
def photos_allowed(tmp_path, monkeypatch):
    """The tools read photo paths only under the allowed roots: this test's folder is one."""
    from slc.agent.settings import get_settings

    monkeypatch.setenv("SLC_PRIVACY__PHOTO_ROOTS", json.dumps([str(tmp_path)]))
    get_settings.cache_clear()


class HostModel(GenericFakeChatModel):
    """TEST DOUBLE for a host agent's model: 'supports' tools by replaying scripted tool calls."""

    def bind_tools(self, tools: Any, **kw: Any) -> "HostModel":
        return self


def _call(name: str, args: dict, i: int = 1) -> dict:
    return {"type": "tool_call", "id": f"call-{i}", "name": name, "args": args}


@pytest.fixture
def services(d, concept_factory, store):
    """Fake memory that knows <bo>, a detector that sees him, a verifier that agrees, scripted answers."""

    def make(*answers: str, large: Any = None) -> ServiceFactory:
        memory = d.Memory([concept_factory("bo")], image_neighbours=["bo"])
        replies = [r for a in answers for r in ((d.verdicts({"bo": "agree"}), d.answer(a, ["bo"])) if "[photo]" in a
                                                 else (d.answer(a, ["bo"]),))]
        return ServiceFactory(memory=memory, small_vlm=d.Detector({("bo", 0): "present"}),
                              large_vlm=large or d.Large(replies), image_store=store)

    return make


def test_a_session_is_created_returned_and_continued(services, photo):
    svc = services("[photo] Yes, <bo> is here.", "He is on the left.", "Yes, <bo> is a dog.")
    tool = make_answer_tool(services=svc)  # the default session graph: SQLite under the data dir
    first = tool.invoke(_call(TOOL_NAME, {"question": "Is <bo> in this photo?", "image_path": photo}))
    assert first.status == "success"
    thread = first.artifact["thread_id"]
    assert thread and f"pass thread_id='{thread}' to continue it" in first.content
    second = tool.invoke(_call(TOOL_NAME, {"question": "Where is he?", "thread_id": thread}, 2))
    assert second.status == "success" and second.artifact["thread_id"] == thread
    history = svc._large_vlm.calls[-1]  # the follow-up's answer call carries the first turn
    assert any("Yes, <bo> is here." in str(m.content) for m in history)
    other = tool.invoke(_call(TOOL_NAME, {"question": "Is <bo> a dog?"}, 3))
    assert other.status == "success" and other.artifact["thread_id"] not in (None, thread)  # no thread id: a new session, never the last one


def test_inside_a_host_agent_with_its_own_checkpointer(services, photo):
    svc = services("[photo] Yes, <bo> is here.", "He is on the left.")
    model = HostModel(messages=iter([
        AIMessage(content="", tool_calls=[_call(TOOL_NAME, {"question": "Is <bo> in this photo?", "image_path": photo})]),
        AIMessage(content="He is there."),
    ]))
    agent = create_agent(model, tools=[make_answer_tool(services=svc)], checkpointer=InMemorySaver())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = agent.invoke({"messages": [HumanMessage("Is bo in my photo?")]}, {"configurable": {"thread_id": "host-1"}})
    assert [str(w.message) for w in caught if "durability" in str(w.message)] == []
    tool_msg = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert tool_msg.status == "success" and "Yes, <bo> is here." in tool_msg.content
    assert tool_msg.artifact["thread_id"] != "host-1"  # the host's thread is the host's, ours is ours


def test_no_exception_ever_leaves_a_tool(services, d, photo, store):
    broken_large = d.Large([RuntimeError("a library bug deep below")])
    answer = make_answer_tool(services=services(large=broken_large))
    msg = answer.invoke(_call(TOOL_NAME, {"question": "Is <bo> in this photo?", "image_path": photo}))
    assert msg.status == "error" and "RuntimeError: a library bug deep below" in msg.content
    assert "not caused by your arguments" in msg.content

    class BrokenMemory(d.Memory):
        def delete(self, name: str) -> None:
            raise OSError("disk full")

    forget = make_memory_tools(memory=BrokenMemory([]))[2]
    msg = forget.invoke(_call("forget_concept", {"name": "bo"}))
    assert msg.status == "error" and "OSError: disk full" in msg.content

    class ChattyVLM:
        bank = None

        def detect(self, image: Any, queries: Any, round: int = 0) -> Any:
            raise ModelOutputError("the small model's reply could not be read")

    detect = PersonalizeTool(vlm=ChattyVLM(), resolver=lambda name: ConceptQuery(name=name))
    msg = detect.invoke(_call("detect_personal_concepts", {"image": photo, "concepts": ["bo"]}))
    assert msg.status == "error" and "could not be read" in msg.content


@pytest.mark.parametrize("tool, args", [
    (TOOL_NAME, {"image_path": "x.png"}),  # no question
    ("forget_concept", {}),
    ("remember_concept", {"name": "bo", "image_paths": []}),
    ("detect_personal_concepts", {"image": "x.png", "concepts": []}),
])
def test_arguments_that_do_not_fit_come_back_as_a_message(tool, args, services, d):
    svc = services()
    tools = {t.name: t for t in [make_answer_tool(services=svc), *make_memory_tools(services=svc),
                                 PersonalizeTool(vlm=d.Detector(), resolver=lambda n: ConceptQuery(name=n))]}
    msg = tools[tool].invoke(_call(tool, args))
    assert isinstance(msg, ToolMessage) and msg.status == "error" and msg.content


def test_the_deleting_tool_is_for_explicit_requests_only(services):
    forget = make_memory_tools(services=services())[2]
    assert forget.name == "forget_concept"
    text = forget.description
    assert "Permanently delete" in text and "cannot be undone" in text
    assert "ONLY when the user explicitly asks" in text

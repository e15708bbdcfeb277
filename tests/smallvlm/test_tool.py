"""PersonalizeTool on real concept memory (Chroma + tiny CLIP) and the real tiny VLM with a routed bank.

The only stand-in is the agent's chat model in the create_agent test: FakeToolCallingModel (a LangChain
fake chat model, declared in conftest) scripts the tool call; the tool itself runs for real.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from slc.agent.detection import ConceptQuery, DetectionReport
from slc.agent.errors import UnknownConceptError
from slc.agent.small_vlm import SmallVLM
from slc.tools.personalize import MemoryConceptResolver, PersonalizeTool

from slc.testing.tiny_banks import build_random_adapter_bank

from .conftest import FakeToolCallingModel, photo


@pytest.fixture(scope="module")
def embedders(tiny_clip_path):
    from slc.memory.embedders import HFImageEmbedder, SentenceTransformerTextEmbedder

    return HFImageEmbedder(tiny_clip_path, batch_size=4), SentenceTransformerTextEmbedder()


@pytest.fixture()
def setup(embedders, tiny_vlm_path, tmp_path, monkeypatch):
    from slc.agent.settings import get_settings
    from slc.memory import ConceptMemory

    monkeypatch.setenv("SLC_PRIVACY__PHOTO_ROOTS", json.dumps([str(tmp_path)]))  # the tool reads photos only there
    get_settings.cache_clear()

    image_embedder, text_embedder = embedders
    memory = ConceptMemory(image_embedder=image_embedder, text_embedder=text_embedder)
    memory.add("bo", [photo((150, 90, 40)), photo((140, 80, 30), (64, 64))], description="my brown dog", category="dog")
    memory.add("mochi", [photo((250, 250, 250)), photo((20, 20, 240), (90, 60))], description="a white cat", category="cat")
    centroids = np.stack([memory.concept_embedding("bo"), memory.concept_embedding("mochi"), -memory.concept_embedding("bo")])
    model_path = tiny_vlm_path("idefics3")
    bank = build_random_adapter_bank(model_path, tmp_path / "bank", centroids)
    vlm = SmallVLM.from_pretrained(model_path, device="cpu", bank=bank, max_new_tokens=8, min_yes_no_mass=0.0)
    query_photo = tmp_path / "query.png"
    photo((150, 90, 40), (96, 72)).save(query_photo)
    return memory, vlm, query_photo


def call(tool, args, call_id="call_1"):
    return tool.invoke({"name": tool.name, "args": args, "id": call_id, "type": "tool_call"})


def test_tool_resolves_routes_and_returns_report(setup):
    memory, vlm, query_photo = setup
    resolver = MemoryConceptResolver(memory, vlm.bank)
    bo = resolver("<bo>")
    assert (bo.name, bo.category, bo.description, bo.adapter) == ("bo", "dog", "my brown dog", "a0")
    assert resolver("mochi").adapter == "a1" and bo.reference_images == []
    assert len(MemoryConceptResolver(memory, vlm.bank, with_reference_images=True)("bo").reference_images) == 2
    assert vlm.route(memory.concept_embedding("mochi")) == "a1"
    assert MemoryConceptResolver(memory, None)("bo").adapter is None  # no bank: base model zero-shot

    tool = PersonalizeTool.from_memory(memory, vlm)
    msg = call(tool, {"image": str(query_photo), "concepts": ["<bo>", "mochi", "bo"], "question": "Is bo here?"})
    assert isinstance(msg, ToolMessage) and msg.status == "success"
    report = msg.artifact
    assert isinstance(report, DetectionReport) and report.question == "Is bo here?"
    assert [(d.concept, d.adapter) for d in report.detections] == [("bo", "a0"), ("mochi", "a1")]
    lines = msg.content.splitlines()
    assert len(lines) == 2 and lines[0].startswith("<bo>: ") and lines[1].startswith("<mochi>: ")
    for d, line in zip(report.detections, lines):
        assert d.status in line and f"{d.confidence:.2f}" in line


def test_tool_errors_are_clear_messages(setup, tmp_path):
    memory, vlm, query_photo = setup
    tool = PersonalizeTool.from_memory(memory, vlm)
    msg = call(tool, {"image": str(query_photo), "concepts": ["boo"]})
    assert msg.status == "error" and "Unknown concept 'boo'" in msg.content and "bo" in msg.content.split("Did you mean")[1]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\x00" * 10)
    msg = call(tool, {"image": str(bad), "concepts": ["bo"]})
    assert msg.status == "error" and "broken.jpg" in msg.content and "readable photo" in msg.content
    msg = call(tool, {"image": str(query_photo), "concepts": []})
    assert msg.status == "error"


def test_tool_async_and_plain_resolver(setup):
    _, vlm, query_photo = setup
    known = {"bo": ConceptQuery(name="bo", description="my dog", adapter="a2")}

    def resolver(name: str) -> ConceptQuery:
        if name not in known:
            raise UnknownConceptError(name, list(known))
        return known[name]

    tool = PersonalizeTool(vlm=vlm, resolver=resolver)
    msg = asyncio.run(tool.ainvoke({"name": tool.name, "args": {"image": str(query_photo), "concepts": ["bo"]}, "id": "c", "type": "tool_call"}))
    assert msg.artifact.detections[0].adapter == "a2"
    sync = call(tool, {"image": str(query_photo), "concepts": ["bo"]})
    assert sync.artifact.detections[0].confidence == pytest.approx(msg.artifact.detections[0].confidence)


def test_tool_inside_create_agent(setup):
    from langchain.agents import create_agent

    memory, vlm, query_photo = setup
    tool = PersonalizeTool.from_memory(memory, vlm)
    model = FakeToolCallingModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[{"name": tool.name, "args": {"image": str(query_photo), "concepts": ["bo"]}, "id": "call_7"}],
                ),
                AIMessage(content="Here is what I found."),
            ]
        )
    )
    agent = create_agent(model=model, tools=[tool])
    result = agent.invoke({"messages": [HumanMessage(f"Is <bo> in {query_photo}?")]})
    assert [t.name for t in model.bound_tools] == [tool.name]
    tool_msgs = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert len(tool_msgs) == 1 and tool_msgs[0].tool_call_id == "call_7" and tool_msgs[0].status == "success"
    report = tool_msgs[0].artifact
    assert isinstance(report, DetectionReport) and report.detections[0].concept == "bo"
    assert report.detections[0].adapter == "a0" and tool_msgs[0].content.startswith("<bo>: ")
    assert result["messages"][-1].content == "Here is what I found."

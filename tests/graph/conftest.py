"""Test doubles and fixtures for the SLC graph's unit tests.

TEST DOUBLES (declared): these tests exercise the graph's LOGIC (routing, loop bound, what is verified,
what is kept in state, degradation), so the models are scripted:
- ``RecordingFakeChatModel`` is LangChain's ``GenericFakeChatModel`` (a fake chat model) that also
  records the messages of every call and can raise, standing in for the large VLM.
- ``ScriptedDetector`` stands in for the small VLM (slc.agent.small_vlm.SmallVLM): it returns scripted
  Detections per concept and round and records the ConceptQuery objects it was given. A test with the
  real SmallVLM on a tiny checkpoint lives in test_real_small_vlm.py.
- ``FakeMemory`` stands in for ConceptMemory (recall by name mention + scripted image neighbours); the
  integration test uses the real memory on Chroma.
The ImageStore is the real one (content-addressed files in the test's data dir).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from PIL import Image

from slc.agent.detection import ConceptQuery, Detection
from slc.graphs.context import Context
from slc.graphs.services import ServiceFactory
from slc.graphs.slc import compile_graph
from slc.memory.images import ImageStore
from slc.memory.types import Concept, Identity, RecallHit, ReferenceImage

Reply = str | BaseException | Callable[[list[BaseMessage]], str]


class RecordingFakeChatModel(GenericFakeChatModel):
    """TEST DOUBLE for the large VLM: scripted replies (str, exception, or fn(messages) -> str), recorded calls."""

    calls: list[list[BaseMessage]] = []
    script: list[Any] = []

    def __init__(self, replies: list[Reply], **kw: Any) -> None:
        super().__init__(messages=iter(()), calls=[], script=list(replies), **kw)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> ChatResult:
        self.calls.append(list(messages))
        if not self.script:
            raise AssertionError(f"unexpected large-VLM call #{len(self.calls)}")
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        text = item(messages) if callable(item) else item
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


def claim_ids(messages: list[BaseMessage]) -> dict[str, str]:
    """claim id -> concept, read back from a verify prompt (what the verifier was shown)."""
    text = " ".join(p.get("text", "") for p in messages[-1].content if isinstance(p, dict)) if isinstance(
        messages[-1].content, list) else str(messages[-1].content)
    for m in messages:
        if isinstance(m.content, list):
            text += " ".join(p.get("text", "") for p in m.content if isinstance(p, dict))
    return dict(re.findall(r'"id": "(c\d+)",\s*"concept": "([^"]+)"', text))


def verdicts(by_concept: dict[str, dict[str, Any] | str]) -> Callable[[list[BaseMessage]], str]:
    """A verifier reply that answers per concept (looked up through the ids in the prompt)."""

    def reply(messages: list[BaseMessage]) -> str:
        out = []
        for cid, concept in claim_ids(messages).items():
            v = by_concept.get(concept, "agree")
            v = {"verdict": v} if isinstance(v, str) else v
            out.append({"id": cid, "feedback": f"checked {concept}", **v})
        return "Here you go:\n```json\n" + json.dumps({"verdicts": out}) + "\n```"

    return reply


def answer(text: str, used: list[str] = ()) -> str:
    return json.dumps({"answer": text, "concepts_used": list(used)})


class ScriptedDetector:
    """TEST DOUBLE for the small VLM: ``script[(concept, round)] -> status`` (or a Detection kwargs dict)."""

    bank = None  # no adapter bank: every concept runs on the base model
    protocol = SimpleNamespace(uses_references=False)  # a text protocol: references only on a second pass

    def __init__(self, script: dict[tuple[str, int], str | dict[str, Any]] | None = None, default: str = "absent"):
        self.script = script or {}
        self.default = default
        self.calls: list[tuple[int, list[ConceptQuery]]] = []

    def detect(self, image: Image.Image, concepts: list[ConceptQuery], round: int = 0) -> list[Detection]:
        assert isinstance(image, Image.Image)
        self.calls.append((round, list(concepts)))
        out = []
        for q in concepts:
            spec = self.script.get((q.name, round), self.default)
            spec = {"status": spec} if isinstance(spec, str) else spec
            present = spec["status"] == "present"
            out.append(Detection(concept=q.name, confidence=0.9 if present else 0.1, round=round,
                                 location_absolute="bottom left" if present else None,
                                 location_relative="next to the sofa" if present else None, **spec))
        return out


class FakeMemory:
    """TEST DOUBLE for ConceptMemory: name mentions in the question + scripted image neighbours."""

    def __init__(self, concepts: list[Concept], image_neighbours: list[str] = ()):
        self.concepts = {c.name: c for c in concepts}
        self.image_neighbours = list(image_neighbours)
        self.recall_calls = 0

    def recall(self, text: str | None = None, image: Any = None) -> list[RecallHit]:
        self.recall_calls += 1
        hits: dict[str, RecallHit] = {}
        for name, c in self.concepts.items():
            if text and re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text.lower()):
                hits[name] = RecallHit(concept=c, score=1.0, matched_by=["name"])
        if image is not None:
            for name in self.image_neighbours:
                h = hits.get(name)
                hits[name] = RecallHit(concept=self.concepts[name], score=0.9,
                                       matched_by=(h.matched_by if h else []) + ["image"])
        return list(hits.values())

    def list(self) -> list[Concept]:
        return list(self.concepts.values())

    def reference_image_paths(self, name: str) -> list[str]:
        return [i.path for i in self.concepts[name].images]


def make_image(seed: int = 0, size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), "RGB")


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(tmp_path / "images")


@pytest.fixture
def concept_factory(store: ImageStore):
    def make(name: str, category: str = "dog", description: str = "", **attrs: str) -> Concept:
        ref = store.put(make_image(abs(hash(name)) % 1000))
        return Concept(id=f"id-{name}", tenant="default", name=name, description=description or f"my {category} {name}",
                       identity=Identity(category=category, attributes=attrs or {"fur": "golden"}),
                       images=[ReferenceImage(sha256=ref.sha256, path=ref.path, width=ref.width, height=ref.height)])

    return make


@pytest.fixture
def make_services(store: ImageStore):
    """``make_services(memory, detector, large)``: a service factory over the test doubles (real photo store)."""

    def make(memory: Any, detector: Any, large: Any) -> ServiceFactory:
        return ServiceFactory(memory=memory, small_vlm=detector, large_vlm=large, image_store=store)

    return make


@pytest.fixture
def make_run(make_services):
    """``make_run(memory, detector, large, checkpointer=None, **context)`` -> (graph bound to them, Context)."""

    def make(memory: Any, detector: Any, large: Any, *, checkpointer: Any = None, **context: Any) -> tuple[Any, Context]:
        return compile_graph(checkpointer, services=make_services(memory, detector, large)), Context(**context)

    return make


@pytest.fixture
def photo(tmp_path) -> str:
    p = tmp_path / "photo.png"
    make_image(42, (80, 60)).save(p)
    return str(p)


@pytest.fixture
def d() -> SimpleNamespace:
    """The test doubles and helpers of this folder (importlib import mode: tests cannot import conftest)."""
    return SimpleNamespace(Large=RecordingFakeChatModel, Detector=ScriptedDetector, Memory=FakeMemory,
                           verdicts=verdicts, answer=answer, make_image=make_image, claim_ids=claim_ids)


@pytest.fixture(scope="session")
def image_embedder(tiny_clip_path):
    """Real tiny CLIP (random weights: identical images score 1.0, others lower)."""
    from slc.memory.embedders import HFImageEmbedder

    return HFImageEmbedder(tiny_clip_path, batch_size=4)


@pytest.fixture(scope="session")
def text_embedder():
    """Real all-MiniLM-L6-v2 (shipped offline)."""
    from slc.memory.embedders import SentenceTransformerTextEmbedder

    return SentenceTransformerTextEmbedder()


@pytest.fixture
def real_memory(image_embedder, text_embedder):
    """The real ConceptMemory on embedded Chroma in this test's data dir."""
    from slc.agent.settings import get_settings
    from slc.memory.store import ConceptMemory

    return ConceptMemory(get_settings(), image_embedder=image_embedder, text_embedder=text_embedder)

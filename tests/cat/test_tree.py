"""ConceptTree: JSON round-trips, validation, storage in Concept.tree, and extraction by a chat model.

The chat models here are test doubles (LangChain's fake chat models and a tiny subclass with structured
output): these tests check our prompt/parse logic, not a model's quality.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from PIL import Image
from pydantic import ValidationError

from slc.agent import prompts
from slc.agent.errors import ModelOutputError
from slc.cat.tree import ConceptTree, tree_from_description
from slc.cat.world import make_world, world_tree
from slc.memory.types import Concept


def test_round_trip_dict_and_json():
    tree = ConceptTree.build("Dog", {"fur": "Golden", "collar": "red"}, {"pose": "sitting", "background": "park"})
    assert tree.root == "dog" and tree.get("fur") == "golden"  # normalized
    assert ConceptTree.from_dict(tree.to_dict()) == tree
    assert ConceptTree.from_json(tree.to_json()) == tree
    assert json.loads(tree.to_json())["root"] == "dog"
    assert tree.identity_dims() == ["fur", "collar"] and tree.free_dims() == ["pose", "background"]
    assert tree.identity() == {"fur": "golden", "collar": "red"}


def test_every_world_tree_round_trips_through_concept_memory_record():
    for wc in make_world(20, seed=3):
        concept = wc.to_concept(tenant="t")
        restored = Concept.model_validate_json(concept.model_dump_json())
        assert ConceptTree.from_dict(restored.tree) == wc.tree
        assert restored.identity.category == wc.tree.root


def test_invalid_trees_are_rejected():
    with pytest.raises(ValidationError, match="duplicate"):
        ConceptTree.model_validate({"root": "dog", "attributes": [
            {"name": "fur", "kind": "identity", "value": "a"}, {"name": "fur", "kind": "free", "value": "b"}]})
    with pytest.raises(ValidationError):
        ConceptTree.model_validate({"root": " ", "attributes": []})
    with pytest.raises(ValidationError):
        ConceptTree.model_validate({"root": "dog", "attributes": [{"name": "fur", "kind": "maybe", "value": "a"}]})
    tree = world_tree("star", "red")
    with pytest.raises(KeyError, match="no dimension"):
        tree.with_values({"wings": "yes"})


def test_with_values_is_pure_and_same_identity():
    tree = world_tree("star", "red", "striped", "hat")
    moved = tree.with_values({"position": "top left", "background": "beige"})
    assert tree.get("position") == "center" and moved.get("position") == "top left"
    assert moved.same_identity(tree)
    assert not tree.with_values({"colour": "blue"}).same_identity(tree)
    assert not tree.with_values({}, root="circle").same_identity(tree)


_DRAFT = {"category": "mug", "identity": [{"name": "colour", "kind": "identity", "value": "blue"},
                                          {"name": "pattern", "kind": "free", "value": "white dots"}],
          "free": [{"name": "background", "kind": "free", "value": "kitchen"}]}


def test_tree_from_description_json_fallback_for_models_without_tools():
    """FakeMessagesListChatModel cannot bind tools: the JSON-in-text path must be used and parsed."""
    model = FakeMessagesListChatModel(responses=[AIMessage(content="Sure!\n" + json.dumps(_DRAFT) + "\nDone.")])
    tree = tree_from_description(model, "My blue mug with white dots", images=[Image.new("RGB", (8, 8))])
    assert tree.root == "mug"
    assert tree.identity() == {"colour": "blue", "pattern": "white dots"}  # the list decides the kind
    assert tree.free() == {"background": "kitchen"}


class _StructuredFake(FakeMessagesListChatModel):
    """A fake chat model with structured output; records the messages it was given."""

    seen: list[Any] = []

    def with_structured_output(self, schema, **kwargs):  # type: ignore[override]
        def run(messages):
            self.seen.append(messages)
            return schema.model_validate(_DRAFT)

        return RunnableLambda(run)


def test_tree_from_description_structured_output_sends_prompt_and_images():
    model = _StructuredFake(responses=[])
    tree = tree_from_description(model, "blue mug", images=[Image.new("RGB", (8, 8), (0, 0, 255))], name="mug1")
    assert tree.root == "mug" and tree.free_dims() == ["background"]
    system, human = model.seen[-1]
    assert system.content == prompts.CAT_TREE_SYSTEM
    assert "<mug1>" in human.content[0]["text"] and "blue mug" in human.content[0]["text"]
    assert human.content[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_tree_from_description_unparseable_raises_with_raw_text():
    model = FakeMessagesListChatModel(responses=[AIMessage(content="I think it is a mug.")])
    with pytest.raises(ModelOutputError) as err:
        tree_from_description(model, "a mug")
    assert err.value.raw == "I think it is a mug."
    with pytest.raises(ValueError):
        tree_from_description(model, "  ")

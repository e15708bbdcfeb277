"""Concept-as-Tree: a concept as root category + attribute dimensions (identity or free) + leaf values.

Why a tree and not a caption: CaT's controllability comes from knowing *which* attributes define the
concept (identity: colour, pattern, material, face, accessory, ...) and which may change without changing
who/what it is (free: pose, viewpoint, background, lighting, scale, position, ...). Positives keep every
identity leaf, negatives change the root or a counted number of identity leaves (see :mod:`slc.cat.edits`).

The tree is stored with the concept in memory as plain JSON (``Concept.tree``), so :meth:`to_dict` /
:meth:`from_dict` are the storage contract. A tree can be written by hand, taken from the procedural
concept world (:mod:`slc.cat.world`) or extracted by any LangChain chat model with
:func:`tree_from_description` (structured output, with a JSON-in-text fallback for models without tool
calling, e.g. a small local VLM behind ``transformers serve``).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from slc.agent.errors import ModelOutputError

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.language_models import BaseChatModel
    from PIL.Image import Image

log = logging.getLogger(__name__)

#: "identity": defines the concept and has a word (colour: red); "free": may vary between photos (pose,
#: background); "instance": defines THIS concept but no vocabulary word names it (a shade, where a mark sits,
#: proportions): two concepts with the same identity text differ only there (look-alike twins), so only
#: their photos tell them apart. Instance leaves are never part of the concept's identity text.
DimensionKind = Literal["identity", "free", "instance"]

def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", str(text).strip().lower())


class Attribute(BaseModel):
    """One attribute dimension of a concept and its leaf (the concept's value in that dimension)."""

    name: str = Field(description="Dimension name, lower case, e.g. 'colour', 'pose'.")
    kind: DimensionKind = Field(description="'identity' = defines the concept (has a word); 'free' = may vary "
                                "freely; 'instance' = defines the concept, no word names it.")
    value: str = Field(description="The leaf: the concept's value in this dimension, e.g. 'red', 'sitting'.")

    @field_validator("name", "value")
    @classmethod
    def _clean(cls, v: str) -> str:
        v = _norm(v)
        if not v:
            raise ValueError("must not be empty")
        return v


class ConceptTree(BaseModel):
    """Root category, then attribute dimensions (identity or free), each with one leaf value."""

    root: str = Field(description="The concept's permanent category, e.g. 'star', 'dog', 'mug'.")
    attributes: list[Attribute] = Field(default_factory=list)

    @field_validator("root")
    @classmethod
    def _clean_root(cls, v: str) -> str:
        v = _norm(v)
        if not v:
            raise ValueError("root category must not be empty")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> "ConceptTree":
        names = [a.name for a in self.attributes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate attribute dimensions: {dupes}")
        if "root" in names or "category" in names:
            raise ValueError("'root'/'category' is the tree's root, not an attribute dimension")
        return self

    # -- queries -----------------------------------------------------------------------------------
    def dims(self, kind: DimensionKind | None = None) -> list[str]:
        return [a.name for a in self.attributes if kind is None or a.kind == kind]

    def identity_dims(self) -> list[str]:
        return self.dims("identity")

    def free_dims(self) -> list[str]:
        return self.dims("free")

    def identity(self) -> dict[str, str]:
        """Identity leaves (without the root)."""
        return {a.name: a.value for a in self.attributes if a.kind == "identity"}

    def free(self) -> dict[str, str]:
        return {a.name: a.value for a in self.attributes if a.kind == "free"}

    def instance_dims(self) -> list[str]:
        return self.dims("instance")

    def instance(self) -> dict[str, str]:
        """Instance leaves: visual detail of this very concept that no vocabulary word names."""
        return {a.name: a.value for a in self.attributes if a.kind == "instance"}

    def leaves(self) -> dict[str, str]:
        return {a.name: a.value for a in self.attributes}

    def get(self, name: str) -> str:
        if name in ("root", "category"):
            return self.root
        for a in self.attributes:
            if a.name == name:
                return a.value
        raise KeyError(f"tree has no dimension {name!r}; it has {self.dims()}")

    def kind_of(self, name: str) -> DimensionKind:
        for a in self.attributes:
            if a.name == name:
                return a.kind
        raise KeyError(f"tree has no dimension {name!r}; it has {self.dims()}")

    def same_identity(self, other: "ConceptTree") -> bool:
        """True when root and every identity leaf are equal (free and instance leaves may differ): the two
        have the same identity TEXT, so a text-only recognizer cannot tell them apart."""
        return self.root == other.root and self.identity() == other.identity()

    def same_instance(self, other: "ConceptTree") -> bool:
        """True when they are the same concept: same identity AND same instance leaves (free may differ)."""
        return self.same_identity(other) and self.instance() == other.instance()

    # -- edits (pure: return a new tree) -------------------------------------------------------------
    def with_values(self, changes: dict[str, str], root: str | None = None) -> "ConceptTree":
        """A copy with some leaves (and optionally the root) replaced; unknown dimensions are an error."""
        unknown = set(changes) - set(self.dims())
        if unknown:
            raise KeyError(f"tree has no dimension(s) {sorted(unknown)}; it has {self.dims()}")
        attrs = [a.model_copy(update={"value": _norm(changes[a.name])}) if a.name in changes else a
                 for a in self.attributes]
        return ConceptTree(root=root if root is not None else self.root, attributes=attrs)

    # -- storage ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in ``Concept.tree``."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ConceptTree":
        return cls.model_validate(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ConceptTree":
        return cls.model_validate_json(text)

    @classmethod
    def build(cls, root: str, identity: dict[str, str], free: dict[str, str] | None = None,
              instance: dict[str, str] | None = None) -> "ConceptTree":
        """By hand: ``ConceptTree.build("dog", {"fur": "golden"}, {"pose": "sitting"})``."""
        attrs = [Attribute(name=k, kind="identity", value=v) for k, v in identity.items()]
        attrs += [Attribute(name=k, kind="instance", value=v) for k, v in (instance or {}).items()]
        attrs += [Attribute(name=k, kind="free", value=v) for k, v in (free or {}).items()]
        return cls(root=root, attributes=attrs)


# -------------------------------------------------------------------------------------------------
# Extraction by a chat model
# -------------------------------------------------------------------------------------------------


class _TreeDraft(BaseModel):
    """What the model is asked to return (flat lists: strict structured-output modes dislike free dicts)."""

    category: str = Field(description="The permanent category of the concept, one or two words.")
    identity: list[Attribute] = Field(default_factory=list, description="Attributes with kind 'identity'.")
    free: list[Attribute] = Field(default_factory=list, description="Attributes with kind 'free'.")


def _image_block(image: "Image") -> dict[str, Any]:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    b64 = base64.b64encode(buf.getvalue()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}}


def _draft_to_tree(draft: _TreeDraft) -> ConceptTree:
    attrs: list[Attribute] = []
    seen: set[str] = set()
    for kind, items in (("identity", draft.identity), ("free", draft.free)):
        for a in items:
            if a.name in seen or a.name in ("root", "category"):
                continue  # a model repeating a dimension: keep the first (identity wins)
            seen.add(a.name)
            attrs.append(Attribute(name=a.name, kind=kind, value=a.value))  # the list decides the kind
    return ConceptTree(root=draft.category, attributes=attrs)


def _parse_json_text(text: str) -> _TreeDraft:
    match = re.search(r"\{.*\}", text, flags=re.DOTALL)
    if not match:
        raise ModelOutputError("The model's answer holds no JSON object for the concept tree.", raw=text)
    try:
        return _TreeDraft.model_validate_json(match.group(0))
    except ValidationError as exc:
        raise ModelOutputError(f"The model's concept-tree JSON does not fit the schema: {exc}", raw=text) from exc


def tree_from_description(
    chat_model: "BaseChatModel",
    description: str,
    images: Sequence["Image"] | None = None,
    *,
    name: str | None = None,
) -> ConceptTree:
    """Ask a chat model (any LangChain ``BaseChatModel``) for a concept's tree.

    Tries the model's structured output first; a model that cannot bind tools (``NotImplementedError``)
    is asked for JSON in text instead, with the same schema. Raises :class:`ModelOutputError` (raw text
    kept) when neither yields a valid tree, never returns a half-filled tree.
    """
    from langchain_core.messages import HumanMessage, SystemMessage

    from slc.agent import prompts

    if not description.strip() and not images:
        raise ValueError("tree_from_description needs a description or at least one image")
    text = prompts.CAT_TREE_USER.format(name=f"<{name}>" if name else "the concept", description=description.strip()
                                        or "(no description; use the images)")
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    content += [_image_block(im) for im in images or ()]
    messages = [SystemMessage(prompts.CAT_TREE_SYSTEM), HumanMessage(content=content)]

    try:
        structured = chat_model.with_structured_output(_TreeDraft)
    except NotImplementedError:
        structured = None
    if structured is not None:
        try:
            draft = structured.invoke(messages)
            if isinstance(draft, dict):
                draft = _TreeDraft.model_validate(draft)
            return _draft_to_tree(draft)
        except NotImplementedError:
            pass  # lazily-raised tool binding: fall through to the JSON-text path
        except ValidationError as exc:
            raise ModelOutputError(f"Structured concept tree did not validate: {exc}") from exc

    log.info("chat model has no structured output; asking for JSON in text")
    json_messages = [SystemMessage(prompts.CAT_TREE_SYSTEM + "\n\n" + prompts.CAT_TREE_JSON_SUFFIX),
                     HumanMessage(content=content)]
    reply = chat_model.invoke(json_messages)
    raw = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
    return _draft_to_tree(_parse_json_text(raw))


__all__ = [
    "Attribute",
    "ConceptTree",
    "DimensionKind",
    "tree_from_description",
]

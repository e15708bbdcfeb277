"""The procedural "concept world": a closed vocabulary of shapes, colours, patterns and accessories.

Why: the whole CaT pipeline (trees -> edits -> images -> filter -> export -> training -> evaluation) must
run offline with exact ground truth. A concept here is a shape (root) with identity leaves colour,
pattern and accessory; free dims (position, scale, rotation, background, texture, clutter, lighting,
noise) vary without changing the concept. :func:`make_world` names N concepts (``<c017>``) with their
trees and one-line descriptions; the learning benchmark holds some out to test recognition of concepts
never seen in training.

Visual-ambiguity guarantees (tested): the object palette's colours are >= 100 apart in RGB and stay
nearest to themselves under every lighting level; backgrounds and clutter are low-saturation (greys and
pastels), so "the saturated pixels" are exactly the object's body; accessories are near-black and sit
outside the body (above or below), so they never hide colour or pattern.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import product

from pydantic import BaseModel, Field

from slc.cat.edits import Vocabulary
from slc.cat.tree import Attribute, ConceptTree

RGB = tuple[int, int, int]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "diamond", "cross", "heart")
PALETTE: dict[str, RGB] = {
    "red": (215, 35, 35),
    "orange": (250, 130, 0),
    "yellow": (240, 225, 40),
    "green": (40, 160, 60),
    "cyan": (30, 195, 215),
    "blue": (40, 70, 215),
    "purple": (135, 50, 185),
    "pink": (245, 120, 205),
}
PATTERNS: tuple[str, ...] = ("solid", "striped", "dotted", "checkered")
ACCESSORIES: tuple[str, ...] = ("none", "hat", "bowtie", "antenna")
ACCESSORY_RGB: RGB = (25, 25, 25)

# Free dimensions: each ordered (for "how far" a positive's change goes); the first listed is not special,
# the reference value is REFERENCE_FREE.
POSITIONS: tuple[str, ...] = ("top left", "top", "top right", "left", "center", "right",
                              "bottom left", "bottom", "bottom right")
SCALES: dict[str, float] = {"small": 0.34, "medium": 0.44, "large": 0.54}  # body diameter / image size
ROTATIONS: tuple[str, ...] = ("0", "15", "30", "45", "60", "75")
BACKGROUNDS: dict[str, RGB] = {
    "white": (245, 245, 245),
    "light grey": (205, 205, 205),
    "beige": (230, 215, 185),
    "pale blue": (205, 220, 240),
    "pale green": (210, 232, 205),
    "lavender": (228, 218, 242),
}
TEXTURES: tuple[str, ...] = ("plain", "gradient", "speckled")
CLUTTER: dict[str, int] = {"none": 0, "few": 2, "many": 4}
CLUTTER_RGB: dict[str, RGB] = {"grey": (128, 128, 128), "dark grey": (90, 90, 90), "silver": (165, 165, 165)}
CLUTTER_SHAPES: tuple[str, ...] = ("square", "circle", "triangle")
LIGHTING: dict[str, float] = {"dim": 0.85, "normal": 1.0, "bright": 1.12}
NOISE: dict[str, float] = {"none": 0.0, "low": 4.0, "high": 9.0}  # Gaussian sigma in 8-bit units

IDENTITY_DIMS: tuple[str, ...] = ("colour", "pattern", "accessory")
FREE_DIMS: tuple[str, ...] = ("position", "scale", "rotation", "background", "texture", "clutter", "lighting", "noise")
REFERENCE_FREE: dict[str, str] = {
    "position": "center", "scale": "medium", "rotation": "0", "background": "white", "texture": "plain",
    "clutter": "none", "lighting": "normal", "noise": "none",
}

WORLD_VOCABULARY = Vocabulary(
    roots=list(SHAPES),
    values={
        "colour": list(PALETTE), "pattern": list(PATTERNS), "accessory": list(ACCESSORIES),
        "position": list(POSITIONS), "scale": list(SCALES), "rotation": list(ROTATIONS),
        "background": list(BACKGROUNDS), "texture": list(TEXTURES), "clutter": list(CLUTTER),
        "lighting": list(LIGHTING), "noise": list(NOISE),
    },
    ordinal=["scale", "rotation", "clutter", "lighting", "noise"],
)


def world_tree(shape: str, colour: str, pattern: str = "solid", accessory: str = "none",
               **free: str) -> ConceptTree:
    """A concept-world tree; free leaves default to :data:`REFERENCE_FREE`."""
    values = {**REFERENCE_FREE, **free}
    unknown = set(values) - set(FREE_DIMS)
    if unknown:
        raise KeyError(f"unknown free dimension(s) {sorted(unknown)}; known: {FREE_DIMS}")
    attrs = [Attribute(name="colour", kind="identity", value=colour),
             Attribute(name="pattern", kind="identity", value=pattern),
             Attribute(name="accessory", kind="identity", value=accessory)]
    attrs += [Attribute(name=d, kind="free", value=values[d]) for d in FREE_DIMS]
    return ConceptTree(root=shape, attributes=attrs)


_PATTERN_WORDS = {"solid": "", "striped": "striped", "dotted": "dotted", "checkered": "checkered"}
_ACCESSORY_WORDS = {"none": "", "hat": "wearing a hat", "bowtie": "wearing a bowtie", "antenna": "with an antenna"}


def describe(tree: ConceptTree) -> str:
    """'a red striped star wearing a hat' (identity only: what the concept always looks like)."""
    ident = tree.identity()
    words = [ident.get("colour", ""), _PATTERN_WORDS.get(ident.get("pattern", "solid"), ident.get("pattern", "")),
             tree.root]
    text = " ".join(w for w in words if w)
    acc = ident.get("accessory", "none")
    if acc != "none":
        text += " " + _ACCESSORY_WORDS.get(acc, f"with a {acc}")
    article = "an" if text[0] in "aeiou" else "a"
    return f"{article} {text}"


def describe_scene(tree: ConceptTree) -> str:
    """Identity plus where and on what: used for description targets in exports."""
    free = tree.free()
    where = free.get("position", "center")
    where = "in the center" if where == "center" else f"at the {where}"
    text = f"{describe(tree)}, {where}, on a {free.get('background', 'white')} background"
    clutter = free.get("clutter", "none")
    if clutter != "none":
        text += f", with {clutter} grey shapes around"
    return text


class WorldConcept(BaseModel):
    """One named concept of the world."""

    name: str = Field(description="e.g. 'c017'")
    tree: ConceptTree
    description: str

    @property
    def token(self) -> str:
        return f"<{self.name}>"

    def to_concept(self, tenant: str = "default"):
        """The memory record (``slc.memory.types.Concept``) with identity and tree filled in."""
        from slc.memory.types import Concept, Identity

        return Concept(id=f"world-{self.name}", tenant=tenant, name=self.name, description=self.description,
                       identity=Identity(category=self.tree.root, attributes=self.tree.identity()),
                       tree=self.tree.to_dict())


class ConceptWorld(BaseModel):
    """N named concepts with distinct identities, plus the vocabulary they were drawn from."""

    seed: int
    concepts: list[WorldConcept]
    vocabulary: Vocabulary = Field(default_factory=lambda: WORLD_VOCABULARY.model_copy(deep=True))

    def __iter__(self) -> Iterator[WorldConcept]:  # type: ignore[override]
        return iter(self.concepts)

    def __len__(self) -> int:
        return len(self.concepts)

    def get(self, name: str) -> WorldConcept:
        name = name.strip("<>")
        for c in self.concepts:
            if c.name == name:
                return c
        raise KeyError(f"no concept {name!r} in this world")


def identity_space() -> list[tuple[str, str, str, str]]:
    """Every (shape, colour, pattern, accessory) combination: 8*8*4*4 = 1024 possible concepts."""
    return list(product(SHAPES, PALETTE, PATTERNS, ACCESSORIES))


def make_world(n_concepts: int, seed: int = 0) -> ConceptWorld:
    """N concepts with distinct identities, drawn deterministically from :func:`identity_space`."""
    space = identity_space()
    if not 1 <= n_concepts <= len(space):
        raise ValueError(f"n_concepts must be in 1..{len(space)}, got {n_concepts}")
    rng = random.Random(seed)
    picks = rng.sample(space, n_concepts)
    width = max(3, len(str(n_concepts - 1)))
    concepts = []
    for i, (shape, colour, pattern, accessory) in enumerate(picks):
        tree = world_tree(shape, colour, pattern, accessory)
        name = f"c{i:0{width}d}"
        concepts.append(WorldConcept(name=name, tree=tree, description=f"<{name}> is {describe(tree)}."))
    return ConceptWorld(seed=seed, concepts=concepts)


__all__ = [
    "ACCESSORIES", "BACKGROUNDS", "CLUTTER", "ConceptWorld", "FREE_DIMS", "IDENTITY_DIMS", "LIGHTING", "NOISE",
    "PALETTE", "PATTERNS", "POSITIONS", "REFERENCE_FREE", "ROTATIONS", "SCALES", "SHAPES", "TEXTURES",
    "WORLD_VOCABULARY", "WorldConcept", "describe", "describe_scene", "identity_space", "make_world", "world_tree",
]

"""The procedural "concept world": a closed vocabulary of shapes, colours, patterns and accessories,
and (v2) instances: visual detail no vocabulary word names.

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

v2, instances not attribute combinations (``make_world(..., instances=True)``): personalization means telling
*your* red star from every other red star, so each concept also carries instance leaves (tree kind
"instance") that no word of the vocabulary names and that never enter its identity text: a continuous
shade of its colour, a pale mark on one side of its body, its proportions, the
scale of its pattern and the colour of its accessory. A look-alike twin (:func:`twin_of`) has the same
identity text and differs in one instance leaf by a visible margin (a shade change across the colour's
direction, so it is never a lighting change). For tests beyond the training distribution there are
colours outside the training vocabulary (:data:`OOV_PALETTE`) and shifted free values
(:data:`SHIFTED_FREE`: unseen backgrounds, scales and lighting; several objects are drawn with
``render(..., companions=[...])``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import product

import numpy as np
from pydantic import BaseModel, Field

from slc.agent.errors import ConceptTreeError
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

# Colours that never appear in training: recognizing a concept of one of these needs its photos (a text-only
# recognizer has no word for them). Not part of WORLD_VOCABULARY.
OOV_PALETTE: dict[str, RGB] = {
    "brown": (150, 90, 45),
    "teal": (20, 130, 125),
    "lime": (160, 235, 60),
    "magenta": (215, 30, 160),
}
ALL_COLOURS: dict[str, RGB] = {**PALETTE, **OOV_PALETTE}

# Instance leaves (v2). Defaults (INSTANCE_REFERENCE) draw exactly what v1 drew.
SHADE_MAX = 28  # per-channel offset of an instance's shade from its palette colour
MARKS: tuple[str, ...] = ("none", "top", "right", "bottom", "left")  # which side of the body a pale dot sits on
MARK_RGB: RGB = (250, 250, 250)
ASPECT_RANGE: tuple[float, float] = (0.8, 1.25)  # body width / height in the object's frame
PATTERN_SCALE_RANGE: tuple[float, float] = (0.75, 1.35)  # pattern period factor
ACCESSORY_COLOURS: dict[str, RGB] = {"charcoal": (25, 25, 25), "maroon": (100, 18, 24), "navy": (18, 28, 100),
                                     "forest": (18, 78, 30)}
INSTANCE_DIMS: tuple[str, ...] = ("shade", "mark", "aspect", "pattern_scale", "accessory_colour")
INSTANCE_REFERENCE: dict[str, str] = {"shade": "+0 +0 +0", "mark": "none", "aspect": "1.00", "pattern_scale": "1.00",
                                      "accessory_colour": "charcoal"}
# A twin differs from its concept by at least this much in the leaf it changes (visible at 64 px).
TWIN_SHADE_MIN = 32.0  # RGB distance ACROSS the colour's direction (a lighting change moves along it)
TWIN_ASPECT_MIN = 0.2
TWIN_PATTERN_SCALE_MIN = 0.3

IDENTITY_DIMS: tuple[str, ...] = ("colour", "pattern", "accessory")
FREE_DIMS: tuple[str, ...] = ("position", "scale", "rotation", "background", "texture", "clutter", "lighting", "noise")
REFERENCE_FREE: dict[str, str] = {
    "position": "center", "scale": "medium", "rotation": "0", "background": "white", "texture": "plain",
    "clutter": "none", "lighting": "normal", "noise": "none",
}

# Free values never used in training: the "shifted scenes" of the recognition benchmark.
SHIFTED_BACKGROUNDS: dict[str, RGB] = {"pale yellow": (245, 240, 200), "mint": (200, 240, 228), "slate": (88, 92, 104)}
SHIFTED_SCALES: dict[str, float] = {"tiny": 0.27, "huge": 0.62}
SHIFTED_LIGHTING: dict[str, float] = {"very dim": 0.74, "very bright": 1.22}
SHIFTED_FREE: dict[str, list[str]] = {"background": list(SHIFTED_BACKGROUNDS), "scale": list(SHIFTED_SCALES),
                                      "lighting": list(SHIFTED_LIGHTING)}

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
               instance: dict[str, str] | None = None, **free: str) -> ConceptTree:
    """A concept-world tree; free leaves default to :data:`REFERENCE_FREE`. ``instance`` (v2) adds the
    instance leaves (missing ones take :data:`INSTANCE_REFERENCE`); without it the tree is a v1 tree."""
    values = {**REFERENCE_FREE, **free}
    unknown = set(values) - set(FREE_DIMS)
    if unknown:
        raise KeyError(f"unknown free dimension(s) {sorted(unknown)}; known: {FREE_DIMS}")
    attrs = [Attribute(name="colour", kind="identity", value=colour),
             Attribute(name="pattern", kind="identity", value=pattern),
             Attribute(name="accessory", kind="identity", value=accessory)]
    if instance is not None:
        inst = {**INSTANCE_REFERENCE, **instance}
        unknown = set(inst) - set(INSTANCE_DIMS)
        if unknown:
            raise KeyError(f"unknown instance dimension(s) {sorted(unknown)}; known: {INSTANCE_DIMS}")
        attrs += [Attribute(name=d, kind="instance", value=inst[d]) for d in INSTANCE_DIMS]
    attrs += [Attribute(name=d, kind="free", value=values[d]) for d in FREE_DIMS]
    return ConceptTree(root=shape, attributes=attrs)


# -- instances (v2) -----------------------------------------------------------------------------------------


def parse_shade(value: str) -> tuple[int, int, int]:
    """'+12 -4 +3' -> (12, -4, 3)."""
    parts = value.split()
    if len(parts) != 3:
        raise ValueError(f"shade must be three signed integers like '+12 -4 +3', got {value!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def format_shade(offset: tuple[int, int, int]) -> str:
    return " ".join(f"{v:+d}" for v in offset)


def shade_rgb(colour: str, shade: str) -> RGB:
    """The instance's body colour: its palette colour moved by its shade offset."""
    base = ALL_COLOURS[colour]
    return tuple(int(min(255, max(0, c + d))) for c, d in zip(base, parse_shade(shade)))  # type: ignore[return-value]


def _across(colour: str, a: str, b: str) -> float:
    """Distance between two shades of ``colour`` across the colour's direction (lighting moves along it)."""
    base = np.asarray(ALL_COLOURS[colour], dtype=np.float64)
    d = np.asarray(shade_rgb(colour, a), dtype=np.float64) - np.asarray(shade_rgb(colour, b), dtype=np.float64)
    unit = base / max(float(np.linalg.norm(base)), 1e-9)
    return float(np.linalg.norm(d - d.dot(unit) * unit))


def random_instance(rng: random.Random) -> dict[str, str]:
    """Instance leaves drawn uniformly from their ranges."""
    return {
        "shade": format_shade(tuple(rng.randint(-SHADE_MAX, SHADE_MAX) for _ in range(3))),  # type: ignore[arg-type]
        "mark": rng.choice(MARKS),
        "aspect": f"{rng.uniform(*ASPECT_RANGE):.2f}",
        "pattern_scale": f"{rng.uniform(*PATTERN_SCALE_RANGE):.2f}",
        "accessory_colour": rng.choice(list(ACCESSORY_COLOURS)),
    }


def visible_instance_dims(tree: ConceptTree) -> list[str]:
    """Instance leaves a photo of this concept shows (a pattern scale needs a pattern, an accessory colour
    needs an accessory)."""
    ident = tree.identity()
    dims = ["shade", "mark", "aspect"]
    if ident.get("pattern", "solid") != "solid":
        dims.append("pattern_scale")
    if ident.get("accessory", "none") != "none":
        dims.append("accessory_colour")
    return dims


def twin_change(tree: ConceptTree, rng: random.Random, dim: str | None = None) -> tuple[str, str]:
    """(dimension, new value) that makes a look-alike twin of ``tree``: same identity text, one visible
    instance leaf changed by at least the TWIN_* margin."""
    inst = tree.instance()
    if not inst:
        raise ConceptTreeError("a twin needs a v2 tree with instance leaves (make_world(..., instances=True))")
    dims = visible_instance_dims(tree)
    dim = dim or rng.choice(dims)
    if dim not in dims:
        raise ConceptTreeError(f"instance leaf {dim!r} is not visible on this concept; visible: {dims}")
    cur = inst[dim]
    colour = tree.identity()["colour"]
    for _ in range(500):
        new = random_instance(rng)[dim]
        if dim == "shade" and _across(colour, cur, new) >= TWIN_SHADE_MIN:
            return dim, new
        if dim == "mark" and new != cur and {new, cur} not in ({"top", "right"}, {"right", "bottom"},
                                                                 {"bottom", "left"}, {"left", "top"}):
            return dim, new  # appears or disappears, or moves to the opposite side
        if dim == "aspect" and abs(float(new) - float(cur)) >= TWIN_ASPECT_MIN:
            return dim, new
        if dim == "pattern_scale" and abs(float(new) - float(cur)) >= TWIN_PATTERN_SCALE_MIN:
            return dim, new
        if dim == "accessory_colour" and new != cur:
            return dim, new
    raise ConceptTreeError(f"no visible {dim} change found for {cur!r}")  # pragma: no cover - ranges allow one


def twin_of(tree: ConceptTree, rng: random.Random, dim: str | None = None) -> ConceptTree:
    """A look-alike twin: same identity text, one instance leaf visibly different."""
    d, new = twin_change(tree, rng, dim)
    return tree.with_values({d: new})


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


def make_world(n_concepts: int, seed: int = 0, *, instances: bool = False,
               colours: dict[str, RGB] | None = None) -> ConceptWorld:
    """N concepts with distinct identities, drawn deterministically from :func:`identity_space`.

    ``instances`` (v2): each concept also gets random instance leaves (:func:`random_instance`).
    ``colours``: the palette to draw identities from (default the training palette; pass
    :data:`OOV_PALETTE` for concepts whose colour no training text names)."""
    palette = colours or PALETTE
    space = list(product(SHAPES, palette, PATTERNS, ACCESSORIES))
    if not 1 <= n_concepts <= len(space):
        raise ValueError(f"n_concepts must be in 1..{len(space)}, got {n_concepts}")
    rng = random.Random(seed)
    picks = rng.sample(space, n_concepts)
    width = max(3, len(str(n_concepts - 1)))
    concepts = []
    irng = random.Random(f"instances:{seed}")
    for i, (shape, colour, pattern, accessory) in enumerate(picks):
        tree = world_tree(shape, colour, pattern, accessory, instance=random_instance(irng) if instances else None)
        name = f"c{i:0{width}d}"
        concepts.append(WorldConcept(name=name, tree=tree, description=f"<{name}> is {describe(tree)}."))
    return ConceptWorld(seed=seed, concepts=concepts)


__all__ = [
    "ACCESSORIES", "ACCESSORY_COLOURS", "ALL_COLOURS", "BACKGROUNDS", "CLUTTER", "ConceptWorld", "FREE_DIMS",
    "IDENTITY_DIMS", "INSTANCE_DIMS", "INSTANCE_REFERENCE", "LIGHTING", "MARKS", "NOISE", "OOV_PALETTE", "PALETTE",
    "PATTERNS", "POSITIONS", "REFERENCE_FREE", "ROTATIONS", "SCALES", "SHAPES", "SHIFTED_FREE", "TEXTURES",
    "WORLD_VOCABULARY", "WorldConcept", "describe", "describe_scene", "identity_space", "make_world",
    "random_instance", "shade_rgb", "twin_change", "twin_of", "visible_instance_dims", "world_tree",
]

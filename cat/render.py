"""Draw a concept-world tree with PIL: exactly what the tree says, plus the ground truth of where.

Why our own renderer: exact ground truth (the object's box, its 3x3 location name, the nearest clutter
object for a relative location) with no model and no network, fast enough (thousands of images/s at
64 px, see benchmarks/cat_throughput.py) to generate training data on the fly.

How: everything is drawn at 2x and box-downsampled (cheap anti-aliasing), then lighting (a brightness
factor) and sensor noise are applied at the final size. The seed only moves things *within* what the
tree says (exact position inside its cell, +-5% size, clutter placement, noise), never across leaves.
Instance leaves (v2 trees) change the body's shade, proportions and pattern scale, add a pale mark on one
side of the body (the side stays put when the object turns: a spot is seen from the usual view) and colour
the accessory; a tree without them draws as v1.
``companions`` draws other concepts in the same photo (the "several objects" scenes).
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, Field

from slc.agent.errors import ConceptTreeError
from slc.cat import world as W
from slc.cat.tree import ConceptTree

_SS = 2  # supersampling factor
_DARK = 0.45  # pattern ink = body colour * _DARK
_CELL = {"left": 0.27, "center": 0.5, "right": 0.73, "top": 0.27, "bottom": 0.73}


class ClutterInfo(BaseModel):
    shape: str
    colour: str
    center: tuple[float, float]


class CompanionInfo(BaseModel):
    """Where one of ``render(..., companions=[...])``'s other objects was drawn (pixel units of the final image)."""

    index: int = Field(description="Its position in the companions list (they are placed in order).")
    center: tuple[float, float]
    bbox: tuple[int, int, int, int] = Field(description="Object incl. accessory: x0, y0, x1, y1.")
    location_absolute: str


class RenderInfo(BaseModel):
    """Ground truth of one rendered image (pixel units of the final image)."""

    size: int
    center: tuple[float, float] = Field(description="Centre of the object's body.")
    body_radius: float
    bbox: tuple[int, int, int, int] = Field(description="Object incl. accessory: x0, y0, x1, y1.")
    location_absolute: str = Field(description="3x3 name of the body centre, e.g. 'top left', 'center'.")
    location_relative: str | None = Field(description="Relative to the nearest clutter object, if any.")
    clutter: list[ClutterInfo] = Field(default_factory=list)
    companions: list[CompanionInfo] = Field(default_factory=list, description=(
        "The companions actually drawn: a prefix of those asked for (one that finds no free cell is left out, "
        "and so are the ones after it)."))


def _check(dim: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ConceptTreeError(f"the concept world cannot draw {dim}={value!r}; known: {list(allowed)}")


def _cell_xy(position: str) -> tuple[float, float]:
    parts = position.split()
    row = next((p for p in parts if p in ("top", "bottom")), "center")
    col = next((p for p in parts if p in ("left", "right")), "center")
    return _CELL[col], _CELL[row]


def location_name(x: float, y: float, size: int) -> str:
    """3x3 grid name of a point: 'top left', 'top', ..., 'center', ..., 'bottom right'."""
    col = ("left", "", "right")[min(2, int(3 * x / size))]
    row = ("top", "", "bottom")[min(2, int(3 * y / size))]
    return " ".join(p for p in (row, col) if p) or "center"


def shape_polygon(shape: str, cx: float, cy: float, r: float, angle_deg: float,
                  aspect: float = 1.0) -> list[tuple[float, float]] | None:
    """Vertices of a shape of circumradius r, ``aspect`` = width / height in its own frame (None for an
    upright-proportioned circle, drawn as an ellipse)."""
    a0 = math.radians(angle_deg)
    sx, sy = math.sqrt(aspect), 1.0 / math.sqrt(aspect)

    def rot(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        c, s = math.cos(a0), math.sin(a0)
        return [(cx + x * sx * c - y * sy * s, cy + x * sx * s + y * sy * c) for x, y in pts]

    def regular(n: int, start: float) -> list[tuple[float, float]]:
        return [(r * math.cos(start + 2 * math.pi * i / n), r * math.sin(start + 2 * math.pi * i / n)) for i in range(n)]

    if shape == "circle":
        if aspect == 1.0:
            return None
        return rot([(r * math.cos(2 * math.pi * i / 48), r * math.sin(2 * math.pi * i / 48)) for i in range(48)])
    if shape == "square":
        return rot(regular(4, math.pi / 4))
    if shape == "triangle":
        return rot([(x, y + 0.15 * r) for x, y in regular(3, -math.pi / 2)])
    if shape == "diamond":
        return rot([(0, -r), (0.62 * r, 0), (0, r), (-0.62 * r, 0)])
    if shape == "hexagon":
        return rot(regular(6, 0))
    if shape == "star":
        pts = []
        for i in range(10):
            rr = r if i % 2 == 0 else 0.45 * r
            t = -math.pi / 2 + math.pi * i / 5
            pts.append((rr * math.cos(t), rr * math.sin(t)))
        return rot(pts)
    if shape == "cross":
        a, b = 0.34 * r, r
        return rot([(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)])
    if shape == "heart":
        pts = []
        for i in range(40):
            t = 2 * math.pi * i / 40
            x = 16 * math.sin(t) ** 3
            y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
            pts.append((x * r / 17, (y + 2) * r / 17))
        return rot(pts)
    raise ConceptTreeError(f"the concept world cannot draw shape {shape!r}; known: {list(W.SHAPES)}")


def _shape_mask(shape: str, cx: float, cy: float, r: float, angle: float, n: int, aspect: float = 1.0) -> Image.Image:
    mask = Image.new("L", (n, n), 0)
    d = ImageDraw.Draw(mask)
    poly = shape_polygon(shape, cx, cy, r, angle, aspect)
    if poly is None:
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        d.polygon(poly, fill=255)
    return mask


def _pattern(pattern: str, box: tuple[int, int, int, int], cx: float, cy: float, r: float,
             angle: float, scale: float = 1.0) -> np.ndarray | None:
    """Boolean ink mask of a pattern over ``box`` (x0, y0, x1, y1), in the object's own rotated frame."""
    if pattern == "solid":
        return None
    x0, y0, x1, y1 = box
    period = max(4.0 * _SS, r / 2.2) * scale
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    a = math.radians(angle)
    u = (xs - cx) * math.cos(a) + (ys - cy) * math.sin(a)
    v = -(xs - cx) * math.sin(a) + (ys - cy) * math.cos(a)
    if pattern == "striped":
        return np.floor(v / period + 0.25) % 2 == 0
    if pattern == "checkered":
        return (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    if pattern == "dotted":
        du = (u / period) - np.round(u / period)
        dv = (v / period) - np.round(v / period)
        return du * du + dv * dv < 0.28 ** 2
    raise ConceptTreeError(f"the concept world cannot draw pattern {pattern!r}; known: {list(W.PATTERNS)}")


def _accessory(draw: ImageDraw.ImageDraw, accessory: str, cx: float, top: float, bottom: float, r: float,
               ink: tuple[int, int, int] = W.ACCESSORY_RGB) -> None:
    if accessory == "none":
        return
    if accessory == "hat":
        brim_h, crown_h = 0.12 * r, 0.55 * r
        draw.rectangle([cx - 0.75 * r, top - brim_h, cx + 0.75 * r, top], fill=ink)
        draw.rectangle([cx - 0.45 * r, top - brim_h - crown_h, cx + 0.45 * r, top - brim_h], fill=ink)
    elif accessory == "antenna":
        tip = top - 0.7 * r
        draw.line([(cx, top), (cx, tip)], fill=ink, width=max(2, int(0.12 * r)))
        b = 0.18 * r
        draw.ellipse([cx - b, tip - b, cx + b, tip + b], fill=ink)
    elif accessory == "bowtie":
        y = bottom + 0.28 * r
        w, h = 0.55 * r, 0.26 * r
        draw.polygon([(cx, y), (cx - w, y - h), (cx - w, y + h)], fill=ink)
        draw.polygon([(cx, y), (cx + w, y - h), (cx + w, y + h)], fill=ink)
    else:
        raise ConceptTreeError(f"the concept world cannot draw accessory {accessory!r}; known: {list(W.ACCESSORIES)}")


_MARK_SIDE = {"top": (0.0, -1.0), "right": (1.0, 0.0), "bottom": (0.0, 1.0), "left": (-1.0, 0.0)}

# How far (in body radii) each accessory reaches above / below the body: used to keep it inside the frame.
_ACC_EXTENT = {"none": (0.0, 0.0), "hat": (0.7, 0.0), "antenna": (0.9, 0.0), "bowtie": (0.0, 0.6)}


_BACKGROUNDS = {**W.BACKGROUNDS, **W.SHIFTED_BACKGROUNDS}
_SCALES = {**W.SCALES, **W.SHIFTED_SCALES}
_LIGHTING = {**W.LIGHTING, **W.SHIFTED_LIGHTING}


def _background(name: str, texture: str, n: int, rng: np.random.Generator) -> Image.Image:
    base = _BACKGROUNDS[name]
    if texture == "plain":
        return Image.new("RGB", (n, n), base)
    img = np.broadcast_to(np.array(base, dtype=np.float32), (n, n, 3)).copy()
    if texture == "gradient":
        img *= np.linspace(1.0, 0.86, n, dtype=np.float32)[:, None, None]
    elif texture == "speckled":
        speck = rng.random((n // (2 * _SS), n // (2 * _SS))) < 0.18
        speck = np.kron(speck, np.ones((2 * _SS, 2 * _SS), dtype=bool))[:n, :n]
        img[speck] *= 0.88
    return Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB")


def _instance(tree: ConceptTree) -> dict[str, str]:
    inst = {**W.INSTANCE_REFERENCE, **tree.instance()}
    _check("mark", inst["mark"], W.MARKS)
    _check("accessory_colour", inst["accessory_colour"], W.ACCESSORY_COLOURS)
    return inst


def _draw_object(img: Image.Image, tree: ConceptTree, inst: dict[str, str], cx: float, cy: float, r: float,
                 angle: float) -> tuple[int, int, int, int]:
    """Body (shade, proportions), pattern, mark and accessory of one object; returns the body's box."""
    n = img.size[0]
    ident = tree.identity()
    colour = W.shade_rgb(ident["colour"], inst["shade"])
    mask = _shape_mask(tree.root, cx, cy, r, angle, n, float(inst["aspect"]))
    x0, y0, x1, y1 = mask.getbbox() or (0, 0, n, n)
    img.paste(colour, (0, 0, n, n), mask)
    ink = _pattern(ident["pattern"], (x0, y0, x1, y1), cx, cy, r, angle, float(inst["pattern_scale"]))
    if ink is not None:
        sub = np.asarray(mask.crop((x0, y0, x1, y1)), dtype=np.uint8) * ink
        dark = tuple(int(c * _DARK) for c in colour)
        img.paste(dark, (x0, y0, x1, y1), Image.fromarray(sub.astype(np.uint8), "L"))
    draw = ImageDraw.Draw(img)
    if inst["mark"] != "none":  # a pale dot inside the body, on one side of its centre (in the photo's frame)
        dx, dy = _MARK_SIDE[inst["mark"]]
        mx, my, mr = cx + 0.36 * r * dx, cy + 0.36 * r * dy, 0.2 * r
        draw.ellipse([mx - mr, my - mr, mx + mr, my + mr], fill=W.MARK_RGB)
    _accessory(draw, ident["accessory"], cx, y0, y1, r, W.ACCESSORY_COLOURS[inst["accessory_colour"]])
    return x0, y0, x1, y1


def render_with_info(tree: ConceptTree, free_values: dict[str, str] | None = None, size: int = 64,
                     seed: int = 0, companions: list[ConceptTree] | tuple[ConceptTree, ...] = ()) -> tuple[Image.Image, RenderInfo]:
    """Render a concept-world tree (free leaves overridable by ``free_values``); returns image + truth.

    ``companions``: other concepts drawn small in free cells of the same photo (scenes with several
    objects); they never overlap the main object."""
    if size < 16:
        raise ValueError(f"size must be >= 16 px, got {size}")
    leaves = {**W.REFERENCE_FREE, **tree.free(), **(free_values or {})}
    shape = tree.root
    _check("shape", shape, W.SHAPES)
    ident = tree.identity()
    for dim, allowed in (("colour", W.ALL_COLOURS), ("pattern", W.PATTERNS), ("accessory", W.ACCESSORIES)):
        _check(dim, ident.get(dim, ""), allowed)
    for dim, allowed in (("position", W.POSITIONS), ("scale", _SCALES), ("rotation", W.ROTATIONS),
                         ("background", _BACKGROUNDS), ("texture", W.TEXTURES), ("clutter", W.CLUTTER),
                         ("lighting", _LIGHTING), ("noise", W.NOISE)):
        _check(dim, leaves.get(dim, ""), allowed)
    inst = _instance(tree)

    rnd = random.Random(seed)
    nrng = np.random.default_rng(seed)
    n = size * _SS
    img = _background(leaves["background"], leaves["texture"], n, nrng)

    # Body geometry (in supersampled pixels), clamped so body + accessory stay inside the frame.
    r = _SCALES[leaves["scale"]] * n / 2 * rnd.uniform(0.95, 1.05)
    angle = float(leaves["rotation"]) + rnd.uniform(-4, 4)
    fx, fy = _cell_xy(leaves["position"])
    cx, cy = (fx + rnd.uniform(-0.03, 0.03)) * n, (fy + rnd.uniform(-0.03, 0.03)) * n
    up, down = _ACC_EXTENT[ident["accessory"]]
    margin = 1.5 * _SS
    cx = min(max(cx, r + margin), n - r - margin)
    cy = min(max(cy, r * (1 + up) + margin), n - r * (1 + down) - margin)

    draw = ImageDraw.Draw(img)

    # Clutter: small grey shapes that never overlap the object's box (drawn first, behind nothing).
    obox = (cx - r * 1.1, cy - r * (1 + up) - 2, cx + r * 1.1, cy + r * (1 + down) + 2)
    clutter: list[ClutterInfo] = []
    cr = 0.07 * n
    for _ in range(W.CLUTTER[leaves["clutter"]]):
        for _try in range(30):
            x, y = rnd.uniform(cr + 1, n - cr - 1), rnd.uniform(cr + 1, n - cr - 1)
            if obox[0] - cr < x < obox[2] + cr and obox[1] - cr < y < obox[3] + cr:
                continue
            if any(math.dist((x, y), (c.center[0] * _SS, c.center[1] * _SS)) < 2.2 * cr for c in clutter):
                continue
            cshape, cname = rnd.choice(W.CLUTTER_SHAPES), rnd.choice(list(W.CLUTTER_RGB))
            poly = shape_polygon(cshape, x, y, cr, rnd.uniform(0, 90))
            if poly is None:
                draw.ellipse([x - cr, y - cr, x + cr, y + cr], fill=W.CLUTTER_RGB[cname])
            else:
                draw.polygon(poly, fill=W.CLUTTER_RGB[cname])
            clutter.append(ClutterInfo(shape=cshape, colour=cname, center=(x / _SS, y / _SS)))
            break

    placed = _draw_companions(img, companions, obox, random.Random(f"companions:{seed}")) if companions else []

    x0, y0, x1, y1 = _draw_object(img, tree, inst, cx, cy, r, angle)

    # Down-sample, then lighting (a per-channel LUT) and noise at the final size.
    final = img.reduce(_SS)
    gain = _LIGHTING[leaves["lighting"]]
    if gain != 1.0:
        final = final.point([min(255, int(round(i * gain))) for i in range(256)] * 3)
    sigma = W.NOISE[leaves["noise"]]
    if sigma:
        arr = np.asarray(final, dtype=np.float32) + nrng.normal(0.0, sigma, (size, size, 3)).astype(np.float32)
        final = Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")

    ccx, ccy = cx / _SS, cy / _SS
    rel = None
    if clutter:
        near = min(clutter, key=lambda c: math.dist(c.center, (ccx, ccy)))
        dx, dy = near.center[0] - ccx, near.center[1] - ccy
        side = ("left of" if dx > 0 else "right of") if abs(dx) >= abs(dy) else ("above" if dy > 0 else "below")
        rel = f"{side} the {near.colour} {near.shape}"
    info = RenderInfo(
        size=size, center=(ccx, ccy), body_radius=r / _SS,
        bbox=_object_bbox((x0, y0, x1, y1), cx, r, up, down, size),
        location_absolute=location_name(ccx, ccy, size), location_relative=rel, clutter=clutter,
        companions=[CompanionInfo(index=i, center=(x / _SS, y / _SS), bbox=_object_bbox(body, x, rr, u, d, size),
                                  location_absolute=location_name(x / _SS, y / _SS, size))
                    for i, (body, x, y, rr, u, d) in enumerate(placed)])
    return final, info


def _object_bbox(body: tuple[int, int, int, int], cx: float, r: float, up: float, down: float,
                 size: int) -> tuple[int, int, int, int]:
    """An object's box incl. its accessory, in final pixels, from its body box in supersampled pixels."""
    x0, y0, x1, y1 = body
    bx0 = (x0 if up == 0 else min(x0, cx - 0.75 * r)) / _SS
    by0 = (y0 - up * r) / _SS
    bx1 = (x1 if up == 0 else max(x1, cx + 0.75 * r)) / _SS
    by1 = (y1 + down * r) / _SS
    return max(0, int(bx0)), max(0, int(by0)), min(size, math.ceil(bx1)), min(size, math.ceil(by1))


def _draw_companions(img: Image.Image, trees: list[ConceptTree] | tuple[ConceptTree, ...],
                     avoid: tuple[float, float, float, float], rnd: random.Random) -> list[tuple]:
    """Other concepts, small, each in a free cell away from the main object's box (and from each other).
    Returns (body box, cx, cy, r, accessory up, accessory down) of each one drawn, in supersampled pixels."""
    n = img.size[0]
    r = 0.13 * n  # a little smaller than "small": three fit on a row
    boxes = [avoid]
    cells = list(W.POSITIONS)
    rnd.shuffle(cells)
    placed: list[tuple] = []
    for cell in cells:
        if len(placed) == len(trees):
            break
        t = trees[len(placed)]
        up, down = _ACC_EXTENT[t.identity().get("accessory", "none")]
        fx, fy = _cell_xy(cell)
        cx = min(max(fx * n, r + 3), n - r - 3)
        cy = min(max(fy * n, r * (1 + up) + 3), n - r * (1 + down) - 3)
        box = (cx - r * 1.1, cy - r * (1 + up) - 2, cx + r * 1.1, cy + r * (1 + down) + 2)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes):
            continue
        boxes.append(box)
        body = _draw_object(img, t, _instance(t), cx, cy, r, rnd.choice([0.0, 15.0, 30.0, 45.0]))
        placed.append((body, cx, cy, r, up, down))
    return placed


def render(tree: ConceptTree, free_values: dict[str, str] | None = None, size: int = 64, seed: int = 0,
           companions: list[ConceptTree] | tuple[ConceptTree, ...] = ()) -> Image.Image:
    """Render a concept-world tree to an RGB image of ``size`` x ``size`` pixels."""
    return render_with_info(tree, free_values, size, seed, companions)[0]


__all__ = ["ClutterInfo", "CompanionInfo", "RenderInfo", "location_name", "render", "render_with_info", "shape_polygon"]

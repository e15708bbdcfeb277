"""Reference-conditioned recognition: is the object in this photo the SAME individual as in the reference photos?

Why: a concept is an individual ("my dog Bo", not "a golden retriever"), so text (category, attributes)
cannot tell it from a look-alike with the same description; only its photos can. The small VLM's own vision
path (vision tower + connector: the image tokens its language model reads, ``get_image_features``) turns each
photo into tokens; a small learned :class:`ReferenceHead` pools them into an embedding plus predicted
visual properties, and a comparator scores a query against the mean of the concept's reference photos. The
head is meta-trained once with CaT hard negatives including look-alike twins (slc.training.identity), then
works for any new concept from its reference photos alone; it is stored in the adapter bank
(``reference_head/``) beside the LoRA adapters, with the threshold calibrated on validation concepts.

Works for every family the runtime loads (Idefics3/SmolVLM, Qwen2/2.5-VL, LLaVA-OneVision): image features
come from the model's ``get_image_features`` on the processor's own image inputs, one token matrix per photo.

Where the concept is comes from the same head, without generation (the occlusion helpers below,
:meth:`slc.agent.recognition.ReferenceRecognition.locate`): each tile of a grid over the photo is blanked in
turn (filled with the photo's border colour), and how far the head's embedding moves marks where things are
that the head looks at (a map that does not depend on the concept); its local peaks are candidate regions; for
each region the head compares with the references the photo with ONLY that region left and the photo with that
region blanked. The concept is in the region that keeps it recognised when alone and loses it when blanked;
its 3x3 cell is where the map's weight in that region centres. Why not crops around the 9 cell centres: a crop
resized to the processor's size changes the object's scale and a window cuts objects in parts; on the
concept-world QA validation photos the best window scan placed the concept in the right cell of a two-object
photo 0.59 of the time, the regions 0.70 (benchmarks/localization.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from slc.agent.errors import AdapterBankError

if TYPE_CHECKING:
    from PIL.Image import Image
    from transformers import PreTrainedModel, ProcessorMixin

CONFIG_FILE = "reference_head.json"
WEIGHTS_FILE = "reference_head.safetensors"


class ReferenceHeadConfig(BaseModel):
    """The head's shape (saved beside its weights)."""

    model_config = ConfigDict(extra="forbid")

    feature_dim: int = Field(ge=1, description="Width of the VLM's image tokens (get_image_features).")
    embed_dim: int = Field(default=128, ge=8)
    hidden_dim: int = Field(default=256, ge=8)
    property_dim: int = Field(default=0, ge=0, description=(
        "Outputs of the property head (meta-training targets such as shape, colour, marks, proportions); its "
        "predictions are also compared. 0 = embeddings only."))
    threshold: float = Field(default=0.0, description="Comparator logit at and above which it is the same individual "
                             "(calibrated on validation concepts).")


class ReferenceHead(nn.Module):
    """Pooled image tokens -> embedding (+ predicted properties); (query, references) -> same-individual logit."""

    def __init__(self, config: ReferenceHeadConfig) -> None:
        super().__init__()
        self.config = config
        d, h, e = config.feature_dim, config.hidden_dim, config.embed_dim
        self.embed = nn.Sequential(nn.Linear(2 * d, h), nn.GELU(), nn.Linear(h, e))
        self.properties = nn.Linear(e, config.property_dim) if config.property_dim else None
        compared = e + config.property_dim
        self.compare = nn.Sequential(nn.Linear(2 * compared, h // 2), nn.GELU(), nn.Linear(h // 2, 1))

    def pool(self, tokens: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per photo: mean and max over its image tokens (photos may have different token counts)."""
        return torch.stack([torch.cat([t.mean(0), t.amax(0)]) for t in tokens])

    def describe(self, tokens: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(embeddings, raw property outputs) of photos given as token matrices."""
        emb = self.embed(self.pool(tokens))
        return emb, (self.properties(emb) if self.properties is not None else None)

    def signature(self, emb: torch.Tensor, props: torch.Tensor | None) -> torch.Tensor:
        """What the comparator compares: the embedding and the properties (softmax-free: the head learns the scale)."""
        return emb if props is None else torch.cat([emb, props], dim=-1)

    def score(self, query: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """Logit that ``query`` (n, k) shows the individual of ``references`` (n, k: mean reference signatures)."""
        return self.compare(torch.cat([(query - references).abs(), query * references], dim=-1)).squeeze(-1)

    # -- storage -----------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write config + weights (safetensors) into ``folder``."""
        from safetensors.torch import save_file

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(self.config.model_dump_json(indent=2) + "\n")
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(out / WEIGHTS_FILE))
        return out

    @classmethod
    def load(cls, folder: str | Path) -> ReferenceHead:
        """Read a saved head; AdapterBankError naming what is missing or wrong."""
        from safetensors.torch import load_file

        src = Path(folder)
        if not (src / CONFIG_FILE).is_file() or not (src / WEIGHTS_FILE).is_file():
            raise AdapterBankError(f"{src} holds no reference head ({CONFIG_FILE} + {WEIGHTS_FILE}): train one with "
                                   "`slc train identity` or use another recognition protocol")
        try:
            head = cls(ReferenceHeadConfig.model_validate(json.loads((src / CONFIG_FILE).read_text())))
            head.load_state_dict(load_file(str(src / WEIGHTS_FILE)))
        except (ValueError, RuntimeError, KeyError) as exc:
            raise AdapterBankError(f"the reference head in {src} cannot be loaded: {exc}") from exc
        return head.eval()


def image_tokens(model: PreTrainedModel, processor: ProcessorMixin, images: Sequence[Image]) -> list[torch.Tensor]:
    """The image tokens the VLM's language model reads for each photo (one (tokens, dim) matrix per photo).

    Through ``get_image_features`` on the processor's own image inputs, so any family works; photos whose
    features come back batched are split per photo (Idefics3/SmolVLM: every photo's tokens in one row, as many
    per photo; Qwen2-VL, LLaVA-OneVision: one tensor per photo).
    """
    if not images:
        return []
    param = next(model.parameters())
    inputs = processor.image_processor(list(images), return_tensors="pt")
    kwargs = {k: (v.to(param.device, param.dtype) if v.is_floating_point() else v.to(param.device))
              for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    out = model.get_image_features(**kwargs)
    feats = getattr(out, "pooler_output", out)
    if isinstance(feats, torch.Tensor):
        feats = [feats] if len(images) == 1 and feats.dim() == 2 else list(feats)
    rows: list[torch.Tensor] = []
    for f in feats:
        rows += list(f) if f.dim() == 3 else [f]  # a (photos, tokens, dim) block or one photo's (tokens, dim)
    if len(rows) == 1 < len(images) and rows[0].shape[0] % len(images) == 0:
        rows = list(rows[0].split(rows[0].shape[0] // len(images)))  # Idefics3: all photos' tokens in one row
    if len(rows) != len(images):
        # e.g. several crops per photo: features cannot be told apart, so ask one photo at a time
        return [image_tokens(model, processor, [im])[0] for im in images] if len(images) > 1 else [torch.cat(rows)]
    return [r.reshape(-1, r.shape[-1]).float() for r in rows]


# ----------------------------------------------------------------------------------------------------------
# Where in the photo: 3x3 cells, tiles, blanked and kept regions, candidate regions of an occlusion map
# ----------------------------------------------------------------------------------------------------------

#: The 3x3 cells a location is named by (the words of SLC's location-absolute; slc.cat.world.POSITIONS).
CELLS: tuple[str, ...] = ("top left", "top", "top right", "left", "center", "right",
                          "bottom left", "bottom", "bottom right")
#: A box as fractions of the photo's width and height: (x0, y0, x1, y1).
Box = tuple[float, float, float, float]


def cell_name(x: float, y: float) -> str:
    """The 3x3 cell of a point given as fractions of the photo's width and height."""
    col, row = min(2, max(0, int(3 * x))), min(2, max(0, int(3 * y)))
    return CELLS[3 * row + col]


def tile_boxes(grid: int) -> list[Box]:
    """The ``grid`` x ``grid`` tiles of a photo, row by row."""
    return [(gx / grid, gy / grid, (gx + 1) / grid, (gy + 1) / grid) for gy in range(grid) for gx in range(grid)]


def border_colour(image: Image) -> tuple[int, ...]:
    """The median colour of the photo's outermost pixels: what a blanked region is filled with (the
    background, where the photo has one)."""
    import numpy as np

    a = np.asarray(image.convert("RGB"))
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return tuple(int(v) for v in np.median(border, axis=0))


def _pixels(image: Image, box: Box) -> tuple[int, int, int, int]:
    w, h = image.size
    return round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)


def blanked(image: Image, box: Box, fill: tuple[int, ...]) -> Image:
    """The photo with ``box`` filled with ``fill`` (everything else as it was)."""
    from PIL import Image as PILImage

    x0, y0, x1, y1 = _pixels(image, box)
    out = image.convert("RGB").copy()
    if x1 > x0 and y1 > y0:
        out.paste(PILImage.new("RGB", (x1 - x0, y1 - y0), fill), (x0, y0))
    return out


def kept(image: Image, box: Box, fill: tuple[int, ...]) -> Image:
    """The photo with only ``box`` left, at its place and scale, the rest filled with ``fill``."""
    from PIL import Image as PILImage

    x0, y0, x1, y1 = _pixels(image, box)
    out = PILImage.new("RGB", image.size, fill)
    if x1 > x0 and y1 > y0:
        out.paste(image.convert("RGB").crop((x0, y0, x1, y1)), (x0, y0))
    return out


@dataclass(frozen=True)
class Region:
    """A candidate place of an object: the tiles around a peak of the occlusion map."""

    box: Box
    centre: tuple[float, float]  # where the map's weight in the box centres (fractions of width, height)

    @property
    def cell(self) -> str:
        return cell_name(*self.centre)


def occlusion_regions(change: torch.Tensor, *, peak: float, radius: int) -> list[Region]:
    """Candidate regions of an occlusion map (how far blanking each tile moves the head's embedding), given as
    (grid, grid) or flat, tiles row by row.

    A tile is a peak when no neighbour is higher and it reaches ``peak`` x the map's maximum; its region is the
    tiles within ``radius`` of it, and the region's centre is the map-weighted mean of their centres. No peak
    (nothing the head sees changes anywhere) gives no region.
    """
    import math

    grid = math.isqrt(change.numel())
    if grid * grid != change.numel():
        raise ValueError(f"an occlusion map is square; got {change.numel()} tiles")
    m = change.detach().float().reshape(grid, grid)
    top = float(m.max())
    if not top > 0:
        return []
    padded = torch.nn.functional.pad(m[None, None], (1, 1, 1, 1), value=float("-inf"))
    local_max = torch.nn.functional.max_pool2d(padded, 3, stride=1)[0, 0]
    centres = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid
    regions = []
    for y, x in ((m == local_max) & (m >= peak * top)).nonzero().tolist():
        y0, y1, x0, x1 = max(0, y - radius), min(grid, y + radius + 1), max(0, x - radius), min(grid, x + radius + 1)
        w = m[y0:y1, x0:x1].clamp_min(0)
        total = float(w.sum())
        cx = float((w.sum(0) * centres[x0:x1]).sum()) / total
        cy = float((w.sum(1) * centres[y0:y1]).sum()) / total
        regions.append(Region(box=(x0 / grid, y0 / grid, x1 / grid, y1 / grid), centre=(cx, cy)))
    return regions


__all__ = [
    "CELLS", "CONFIG_FILE", "WEIGHTS_FILE", "Box", "ReferenceHead", "ReferenceHeadConfig", "Region", "blanked",
    "border_colour", "cell_name", "image_tokens", "kept", "occlusion_regions", "tile_boxes",
]

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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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


__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "ReferenceHead", "ReferenceHeadConfig", "image_tokens"]

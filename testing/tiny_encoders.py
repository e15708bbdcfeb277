"""A tiny, randomly initialized CLIP saved like a real checkpoint.

Why: concept memory and the CaT quality filter embed images with a real HF vision encoder
(``get_image_features``), but there is no model hub here. This builds a full ``CLIPModel`` (tiny text and
vision towers, 32 px images, 64-d projection) plus its ``CLIPImageProcessor`` in well under a second; the
folder loads back with ``AutoModel`` / ``AutoImageProcessor`` exactly like ``openai/clip-vit-base-patch32``.
Its embeddings are random projections of pixels: fine for plumbing, meaningless for quality.
"""

from __future__ import annotations

from pathlib import Path

TINY_CLIP_IMAGE_SIZE = 32
TINY_CLIP_PROJECTION_DIM = 64


def build_tiny_clip(out_dir: str | Path, seed: int = 0) -> Path:
    """Build (or reuse, when already complete) a tiny CLIP checkpoint in ``out_dir``; returns the folder."""
    out = Path(out_dir).expanduser()
    marker = out / ".slc-tiny-clip-complete"
    stamp = f"tiny random CLIP seed={seed} image_size={TINY_CLIP_IMAGE_SIZE} dim={TINY_CLIP_PROJECTION_DIM}\n"
    if marker.is_file() and marker.read_text() == stamp:
        return out

    import torch
    from transformers import CLIPConfig, CLIPModel

    try:  # transformers 5.x: the default CLIPImageProcessor wants torchvision; the PIL backend does not
        from transformers import CLIPImageProcessorPil as CLIPImageProcessor
    except ImportError:  # pragma: no cover - transformers 4.x
        from transformers import CLIPImageProcessor

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={
            "vocab_size": 99,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 32,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": TINY_CLIP_IMAGE_SIZE,
            "patch_size": 8,
        },
        projection_dim=TINY_CLIP_PROJECTION_DIM,
    )
    model = CLIPModel(config).eval()
    processor = CLIPImageProcessor(
        size={"shortest_edge": TINY_CLIP_IMAGE_SIZE},
        crop_size={"height": TINY_CLIP_IMAGE_SIZE, "width": TINY_CLIP_IMAGE_SIZE},
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    marker.write_text(stamp)  # written last: a folder without it is an interrupted build
    return out


__all__ = ["build_tiny_clip", "TINY_CLIP_IMAGE_SIZE", "TINY_CLIP_PROJECTION_DIM"]

"""Image generator backends behind one interface: ``generate(sample) -> PIL.Image``.

Why a protocol: the pipeline (edits -> images -> filter -> export) must not care whether pixels come from
the procedural concept world (exact, offline, fast) or a text-to-image model (real photos, no ground
truth, needs the filter). :class:`ProceduralGenerator` is built in; :class:`DiffusersGenerator` is an
optional extra: ``diffusers`` is not a dependency, and constructing it without diffusers raises an
``ImportError`` that says how to install it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from slc.cat.edits import Sample
from slc.cat.render import RenderInfo, render_with_info
from slc.cat.tree import ConceptTree

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image


@runtime_checkable
class Generator(Protocol):
    """Anything that turns a sample (its edited tree) into an RGB image."""

    name: str

    def generate(self, sample: Sample) -> "Image.Image":
        ...


class ProceduralGenerator:
    """The concept-world renderer (:mod:`slc.cat.render`); also returns ground truth via ``generate_with_info``."""

    name = "procedural"

    def __init__(self, size: int = 64) -> None:
        if size < 16:
            raise ValueError(f"size must be >= 16 px, got {size}")
        self.size = size

    def generate(self, sample: Sample) -> "Image.Image":
        return self.generate_with_info(sample)[0]

    def generate_with_info(self, sample: Sample) -> tuple["Image.Image", RenderInfo]:
        return render_with_info(sample.tree, size=self.size, seed=sample.render_seed)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size}


def tree_prompt(tree: ConceptTree) -> str:
    """Text-to-image prompt from a tree: identity first (what must be right), then the free leaves."""
    ident = ", ".join(f"{k} {v}" for k, v in tree.identity().items())
    free = ", ".join(f"{k}: {v}" for k, v in tree.free().items() if v not in ("any", "none"))
    return f"a photo of a {tree.root} ({ident})" + (f", {free}" if free else "")


class DiffusersGenerator:
    """Text-to-image with a diffusers pipeline (optional extra; needs ``pip install diffusers``).

    ``pipeline`` may be a ready pipeline object (e.g. a tiny one built from config in a test) or a local
    path / hub id loaded with ``diffusers.AutoPipelineForText2Image``. Seeds come from the sample, so a
    run is reproducible on the same hardware.
    """

    name = "diffusers"

    def __init__(self, pipeline: Any, size: int = 512, steps: int = 25, guidance: float = 6.0,
                 device: str = "cpu") -> None:
        try:
            import diffusers  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "DiffusersGenerator needs the optional 'diffusers' package: pip install diffusers "
                "(the procedural backend, ProceduralGenerator, needs nothing extra)"
            ) from exc
        if isinstance(pipeline, str):
            from diffusers import AutoPipelineForText2Image

            pipeline = AutoPipelineForText2Image.from_pretrained(pipeline).to(device)
        self.pipeline, self.size, self.steps, self.guidance, self.device = pipeline, size, steps, guidance, device

    def generate(self, sample: Sample) -> "Image.Image":
        import torch

        g = torch.Generator(device="cpu").manual_seed(sample.render_seed)
        out = self.pipeline(prompt=tree_prompt(sample.tree), height=self.size, width=self.size,
                            num_inference_steps=self.steps, guidance_scale=self.guidance, generator=g)
        return out.images[0].convert("RGB")

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "steps": self.steps, "guidance": self.guidance}


__all__ = ["DiffusersGenerator", "Generator", "ProceduralGenerator", "tree_prompt"]

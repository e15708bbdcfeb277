"""MyVLM's captioning layout (github.com/snap-research/MyVLM, README "Data Setup").

``<root>/<concept>/<image>.jpg`` with ``<root>/<concept>/captions_augmented.json`` or ``captions.json`` =
{image file (relative to the concept folder): [captions]}. MyVLM reads ``captions_augmented.json`` when it
exists and ``captions.json`` otherwise (``concept_embedding_training/data_utils.py``); so do we, through the
concept importer's rule (:func:`slc.memory.importers.myvlm.captions_file`), so memory and the benchmark agree.
"""

from __future__ import annotations

from pathlib import Path

from slc.evals.annotations import expect, read_json
from slc.evals.items import CaptionItem, LoadedBenchmark, finish_load
from slc.evals.paths import normalize_image_path
from slc.memory.importers.myvlm import captions_file


def load_myvlm_captions(root: Path, benchmark: str = "myvlm-captions", negatives_per_concept: int = 5) -> LoadedBenchmark:
    """One positive item per captioned image (the concept is present and named to the model), plus, for
    precision to mean something, ``negatives_per_concept`` images of other concepts captioned with this
    concept named (a caption that names it there counts against precision). Negatives are chosen
    deterministically (sorted order). Items cluster by the concept the model is told about."""
    root = Path(root)
    files = [f for f in (captions_file(d) for d in sorted(root.iterdir()) if d.is_dir()) if f is not None] \
        if root.is_dir() else []
    expect(bool(files), root, "no <concept>/captions.json or captions_augmented.json found (MyVLM layout)")
    positives: list[CaptionItem] = []
    by_concept: dict[str, list[str]] = {}
    for f in files:
        concept = f.parent.name
        data = read_json(f)
        expect(isinstance(data, dict), f, "expected image -> list of captions")
        for image, caps in data.items():  # type: ignore[union-attr]
            rel = f"{concept}/{normalize_image_path(image)}"
            caps = [caps] if isinstance(caps, str) else list(caps)
            positives.append(CaptionItem(id=f"{rel}|{concept}", benchmark=benchmark, concepts=[concept],
                                         question="Describe this image.", images=[rel], present=[concept],
                                         references=caps, kind="positive"))
            by_concept.setdefault(concept, []).append(rel)
    negatives: list[CaptionItem] = []
    for concept in sorted(by_concept):
        others = [p for c in sorted(by_concept) if c != concept for p in by_concept[c]]
        step = max(1, len(others) // max(1, negatives_per_concept)) if others else 1
        for rel in others[::step][:negatives_per_concept]:
            negatives.append(CaptionItem(id=f"{rel}|{concept}", benchmark=benchmark, concepts=[concept],
                                         question="Describe this image.", images=[rel], present=[],
                                         kind="negative: another concept's image"))
    return finish_load(benchmark, root, positives + negatives, root)


__all__ = ["load_myvlm_captions"]

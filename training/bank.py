"""Write a trained adapter bank in the runtime's format (:mod:`slc.agent.adapters`, format_version 1).

Why here and not in the trainer: the bank is the contract with :class:`slc.agent.small_vlm.SmallVLM`;
training only has to hand over (meta-concept -> peft adapter) pairs. When the meta stage fine-tuned the
base model itself, that checkpoint is saved inside the bank (``<bank>/base``) and the manifest's
``base_model`` points at it, so "load base_model + adapters" is all a runtime needs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from slc.agent.adapters import AdapterBank
from slc.agent.detector import RecognitionName
from slc.training.metaconcepts import MetaConcepts
from slc.training.trainer import TrainConfig

#: The reference-recognition bank shipped with the package: a from-scratch tiny Idefics3 (~1 M parameters)
#: meta-trained by ``slc train identity --minutes 12`` (seed 0), its reference head calibrated on validation
#: concepts. It knows the concept world's objects, not real photos: a working example and a test fixture
#: (``SLC_SMALL__ADAPTER_BANK=$(python -c "from slc.training.bank import SHIPPED_IDENTITY_BANK as b; print(b)")``).
SHIPPED_IDENTITY_BANK = Path(__file__).resolve().parent / "banks" / "identity-tiny"


def save_base(model: Any, processor: Any, folder: str | os.PathLike[str]) -> Path:
    """Save a (fully fine-tuned) base model and its processor as a loadable checkpoint folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def write_bank(
    root: str | os.PathLike[str],
    *,
    base_model: str | os.PathLike[str],
    metas: MetaConcepts,
    adapters: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    replace: bool = True,
    recognition: RecognitionName = "yes_no",
) -> AdapterBank:
    """Create (or extend) the bank at ``root`` with one adapter per meta-concept.

    ``adapters`` maps a meta-concept name to a saved peft adapter folder or a ``PeftModel`` (its active
    adapter is saved). Every meta-concept must have an adapter; the centroid and member concepts come
    from ``metas``. ``base_model`` is stored relative to the bank when it lies inside it (the bank can
    then be moved as one folder; the runtime resolves it). ``recognition`` records the protocol the
    adapters were trained with (see :mod:`slc.agent.recognition`), which SmallVLM then uses.
    """
    root = Path(root)
    missing = [m.name for m in metas.metas if m.name not in adapters]
    if missing:
        raise ValueError(f"no trained adapter for meta-concept(s) {missing}")
    base = Path(os.fspath(base_model))
    stored = str(base_model)
    if base.exists():
        stored = str(base.resolve())
        if base.resolve().is_relative_to(root.resolve()):
            stored = str(base.resolve().relative_to(root.resolve()))
    bank = AdapterBank.create(root, base_model=stored, embedder=metas.embedder, exist_ok=True, recognition=recognition)
    if bank.manifest.recognition != recognition:
        bank.manifest.recognition = recognition
        bank.save()
    for meta in metas.metas:
        bank.add_adapter(meta.name, adapters[meta.name], meta.centroid, concepts=meta.concepts,
                         metrics=dict((metrics or {}).get(meta.name, {})), replace=replace)
    return AdapterBank.load(root)


def train_bank(
    base_model: str | os.PathLike[str],
    root: str | os.PathLike[str],
    metas: MetaConcepts,
    make_stream: Callable[[list[str], int], Callable[[int], Iterator[Any]]],
    cfg: TrainConfig,
    *,
    device: Any = "cpu",
    budget_split: bool = True,
    resume: bool = False,
    recognition: RecognitionName = "yes_no",
) -> tuple[AdapterBank, dict[str, Any]]:
    """Train one LoRA adapter per meta-concept on its member concepts and write the bank.

    ``make_stream(concepts, seed)`` returns the trainer's ``make_stream(start_round)`` for those concepts.
    ``cfg`` is the per-adapter config (its ``output_dir`` is the parent of one folder per adapter); with
    ``budget_split`` a CPU budget is shared among the adapters in proportion to their cluster sizes, so
    K=1 and K>1 spend the same total. Returns the bank and per-adapter training results.
    """
    from slc.agent.loading import load_vlm
    from slc.training.trainer import prepare_model, train

    total = sum(len(m.concepts) for m in metas.metas)
    adapters, metrics, results = {}, {}, {}
    for i, meta in enumerate(metas.metas):
        update: dict[str, Any] = {"output_dir": str(Path(cfg.output_dir) / meta.name), "seed": cfg.seed + i}
        if budget_split and cfg.budget_cpu_s:
            update["budget_cpu_s"] = cfg.budget_cpu_s * len(meta.concepts) / total
        acfg = cfg.model_copy(update=update)
        model, processor = load_vlm(base_model, device=device, dtype="float32" if str(device) == "cpu" else "auto")
        model.train()
        res = train(prepare_model(model, acfg), processor, make_stream(meta.concepts, acfg.seed), acfg,
                    resume=resume, label=meta.name)
        adapters[meta.name] = res.model
        metrics[meta.name] = {"steps": float(res.steps), "cpu_s": float(res.cpu_s)}
        results[meta.name] = res
    bank = write_bank(root, base_model=base_model, metas=metas, adapters=adapters, metrics=metrics, recognition=recognition)
    return bank, results




def write_reference_bank(root: str | os.PathLike[str], model: Any, processor: Any, head: Any, *,
                         reference_threshold: float, likelihood_threshold: float = 0.5) -> AdapterBank:
    """A bank whose model decides by reference photos (``recognition="reference"``): the fine-tuned base in
    ``<bank>/base``, the trained :class:`~slc.agent.reference.ReferenceHead` in ``<bank>/reference_head`` with
    its validation-calibrated threshold, and no meta adapters (identity comes from the references, not from a
    routed adapter). ``likelihood_threshold``: for the same model used with the text-only protocol."""
    from slc.agent.recognition import REFERENCE_HEAD_DIR

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    save_base(model, processor, root / "base")
    head.config = head.config.model_copy(update={"threshold": float(reference_threshold)})
    head.save(root / REFERENCE_HEAD_DIR)
    bank = AdapterBank.create(root, base_model="base", exist_ok=True, recognition="reference")
    bank.manifest.recognition = "reference"
    bank.manifest.recognition_threshold = min(0.99, max(1e-6, float(likelihood_threshold)))
    bank.save()
    return AdapterBank.load(root)


__all__ = ["SHIPPED_IDENTITY_BANK", "save_base", "train_bank", "write_bank", "write_reference_bank"]

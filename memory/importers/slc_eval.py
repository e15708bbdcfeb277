"""Concept descriptions embedded in the SLC authors' eval files (``yollava_eval__*.json``, ``mc_eval__*.json``).

Those files are ``{scenario: [{"conversations": [{"from": "system", "value": "You are a helpful assistant.
<bo> is a cute golden retriever puppy."}, ...]}]}``: each concept's description is a sentence of the
system prompt that starts with its ``<name>``; multi-concept scenarios put several such sentences in one
prompt. The same concept may carry different descriptions in different files; the longest wins.

The eval files hold no reference images: pass ``images_root`` (the folder holding ``yollava-data/`` or
``mc_dataset/``) to pick them from the train splits, or import onto concepts already registered (the
``register`` helper then updates their descriptions).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from slc.agent.errors import SLCError
from slc.memory.importers.common import ConceptSpec, ImportPlan, list_images

_SYSTEM_PREFIX = re.compile(r"^\s*You are a helpful assistant\.\s*", re.IGNORECASE)
# A description starts where a "<name>" opens the prompt or follows a sentence end.
_START = re.compile(r"(?:^|(?<=[.!?])\s+)<([^<>\s]+)>")


def parse_system_prompt(text: str) -> dict[str, str]:
    """``"You are a helpful assistant. <a> is x. <b> is y."`` -> ``{"a": "<a> is x.", "b": "<b> is y."}``."""
    body = _SYSTEM_PREFIX.sub("", text or "").strip()
    starts = list(_START.finditer(body))
    out: dict[str, str] = {}
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(body)
        desc = body[m.start() : end].strip()
        name = m.group(1)
        if len(desc) > len(out.get(name, "")):
            out[name] = desc
    return out


def _train_images(images_root: Path, name: str) -> list[Path]:
    for sub in (
        Path("yollava-data/train") / name,
        Path("mc_dataset/two_concept/concept/train") / name,
        Path("mc_dataset/three_concept/concept/train") / name,
        Path("mc_dataset/four_concept/concept/train") / name,
        Path("train") / name,
    ):
        found = list_images(images_root / sub)
        if found:
            return found
    return []


def discover(path: str | Path, *, images_root: str | Path | None = None) -> ImportPlan:
    src = Path(path).expanduser()
    files = sorted(src.glob("*.json")) if src.is_dir() else [src]
    if not files or not all(f.is_file() for f in files):
        raise SLCError(f"No SLC eval JSON files at {src}")
    descriptions: dict[str, str] = {}
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise SLCError(f"{f} is not valid JSON: {exc}") from exc
        groups = data.values() if isinstance(data, dict) else [data]
        for items in groups:
            for item in items if isinstance(items, list) else []:
                for turn in item.get("conversations", []) if isinstance(item, dict) else []:
                    if turn.get("from") == "system":
                        for name, desc in parse_system_prompt(turn.get("value", "")).items():
                            if len(desc) > len(descriptions.get(name, "")):
                                descriptions[name] = desc
    plan = ImportPlan(format="slc_eval", source=str(src))
    root = Path(images_root).expanduser() if images_root else None
    for name in sorted(descriptions):
        spec = ConceptSpec(name=name, description=descriptions[name])
        if root is not None:
            spec.images = _train_images(root, name)
            if not spec.images:
                spec.missing_images.append(f"{root}/<...>/train/{name}/*")
        plan.concepts.append(spec)
    return plan

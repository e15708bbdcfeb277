"""Training conversations (Hugging Face chat/messages format) from CaT samples, and the JSONL writers.

Why these four tasks: recognition yes/no is what SLC's small VLM must answer; the SLC detection JSON
(``{"<cid>": {"present", "location-absolute", "location-relative", "concept-info"}}``) is what SLC's
runtime parses but never trained; attribute QA and descriptions tie the concept token to the tree's
leaves (the auxiliary targets the learning probe asks for). Locations come from the renderer's ground
truth, never from the tree's intended cell (clamping can move an object).

Row schema (one JSON object per line, the same keys on every row so ``datasets.load_dataset("json")``
infers one schema): ``id, sample_id, concept, split, task, difficulty, expected_present, images`` (paths
relative to the dataset folder) and ``messages``: ``[{"role": "user", "content": [{"type": "image",
"path": ..., "text": null}, {"type": "text", "path": null, "text": ...}]}, {"role": "assistant",
"content": [{"type": "text", "path": null, "text": ...}]}]``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from slc.agent import prompts
from slc.cat.edits import Sample
from slc.cat.render import RenderInfo
from slc.cat.world import describe, describe_scene

Task = Literal["recognition", "detection", "attribute", "description"]
TASKS: tuple[Task, ...] = ("recognition", "detection", "attribute", "description")
PROMPT_VERSIONS = {"cat_export": prompts.CAT_EXPORT_VERSION, "cat_tree": prompts.CAT_TREE_VERSION,
                   "cat_judge": prompts.CAT_JUDGE_VERSION}


def _text(t: str) -> dict[str, Any]:
    return {"type": "text", "path": None, "text": t}


def _image(p: str) -> dict[str, Any]:
    return {"type": "image", "path": p, "text": None}


def _turns(image_path: str, question: str, answer: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [_image(image_path), _text(question)]},
            {"role": "assistant", "content": [_text(answer)]}]


def detection_answer(sample: Sample, info: RenderInfo | None) -> dict[str, Any]:
    """SLC's detection JSON for this sample's concept, from the procedural ground truth."""
    present = sample.expected_present
    return {f"<{sample.concept}>": {
        "present": present,
        "location-absolute": info.location_absolute if present and info else None,
        "location-relative": info.location_relative if present and info else None,
        "concept-info": f"I see {describe(sample.tree)}.",
    }}


def conversations(sample: Sample, image_path: str, concept_description: str, info: RenderInfo | None,
                  tasks: Sequence[Task] = TASKS, seed: int = 0) -> list[tuple[Task, list[dict[str, Any]]]]:
    """The conversations one sample yields, one per task (attribute QA picks one dimension by seed)."""
    token = f"<{sample.concept}>"
    out: list[tuple[Task, list[dict[str, Any]]]] = []
    for task in tasks:
        if task == "recognition":
            ans = prompts.CAT_RECOGNITION_YES if sample.expected_present else prompts.CAT_RECOGNITION_NO
            out.append((task, _turns(image_path, prompts.CAT_RECOGNITION_QUESTION.format(token=token), ans)))
        elif task == "detection":
            q = prompts.CAT_DETECTION_QUESTION.format(concepts=f"{token}: {concept_description}")
            out.append((task, _turns(image_path, q, json.dumps(detection_answer(sample, info)))))
        elif task == "attribute":
            rng = random.Random(f"{seed}:{sample.id}:attribute")
            dims = ["shape", *sample.tree.identity_dims()]
            dim = rng.choice(dims)
            if dim == "shape":
                q, a = prompts.CAT_CATEGORY_QUESTION, sample.tree.root
            else:
                q, a = prompts.CAT_ATTRIBUTE_QUESTION.format(dimension=dim), sample.tree.get(dim)
            out.append((task, _turns(image_path, q, a)))
        elif task == "description":
            scene = describe_scene(sample.tree)
            ans = f"This is {token}, {scene}." if sample.expected_present else f"This is {scene}."
            out.append((task, _turns(image_path, prompts.CAT_DESCRIBE_QUESTION, ans)))
        else:
            raise ValueError(f"unknown task {task!r}; known: {TASKS}")
    return out


def conversation_rows(sample: Sample, image_path: str, concept_description: str, info: RenderInfo | None,
                      split: str, tasks: Sequence[Task] = TASKS, seed: int = 0) -> list[dict[str, Any]]:
    """Flat JSONL rows (same keys on every row) for one sample."""
    return [{
        "id": f"{sample.id}:{task}", "sample_id": sample.id, "concept": sample.concept, "split": split,
        "task": task, "difficulty": sample.difficulty, "expected_present": sample.expected_present,
        "images": [image_path], "messages": messages,
    } for task, messages in conversations(sample, image_path, concept_description, info, tasks, seed)]


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows deterministically (key order as built, UTF-8, '\\n'); returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def load_conversations(path: str | Path, split: str = "train"):
    """Load an exported JSONL file back as a ``datasets.Dataset``."""
    from datasets import load_dataset

    return load_dataset("json", data_files=str(path), split=split)


__all__ = ["PROMPT_VERSIONS", "TASKS", "Task", "conversation_rows", "conversations", "detection_answer",
           "load_conversations", "write_jsonl"]

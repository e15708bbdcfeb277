"""MC-LLaVA's own dataset layout (github.com/arctanxarc/MC-LLaVA), which SLC's sharegpt copies do not cover.

Layout (README "File Structure", read as ``llava/dataset.py`` reads it)::

    <root>/<case>/concept/test/<concept>/<i>.png, choice.json, vqa.json, qa.json
    <root>/<case>/multi/<A_B..>/<i>.png, choice.json, vqa.json, qa.json, position.json

- ``choice.json``: visual multiple choice, options inline in the question; single-concept folders map
  image -> {"Human", "AI"}, scenario folders image -> [{"Human", "AI"}, ...]; "AI" is the letter.
- ``qa.json``: text-only multiple choice, a list of {"question", "answer"}.
- ``vqa.json``: open questions about an image, same shape as choice.json, scored by character BLEU.
- captions: every single-concept test image (the concept is present) and every scenario image, whose
  ``position.json`` gives each concept's box or null (non-null = present). The caption prompt names all the
  scenario's concepts, as MC-LLaVA's eval does.

Image keys are paths on the authors' machine (``/workspace/data/MulBench/two_concept/...``) or file names;
items store the path under ``--root`` where the file is (see :mod:`slc.evals.paths`). Items cluster by
scenario: its concepts share images and questions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from slc.evals.annotations import answer_letter, concept_tags, expect, read_json, split_options, strip_image_tag
from slc.evals.items import CaptionItem, ChoiceItem, Item, LoadedBenchmark, OpenVQAItem, finish_load
from slc.evals.paths import normalize_image_path, resolve_image
from slc.memory.importers.common import list_images

Task = Literal["choice", "text", "vqa", "caption"]
_FILE = {"choice": "choice.json", "text": "qa.json", "vqa": "vqa.json"}


class _Layout:
    """The scenario folders under a root (or a root that is itself one case folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.singles = sorted(p for p in {*root.glob("*/concept/test/*"), *root.glob("concept/test/*")} if p.is_dir())
        self.multis = sorted(p for p in {*root.glob("*/multi/*"), *root.glob("multi/*")} if p.is_dir())
        expect(bool(self.singles or self.multis), root,
               "no <case>/concept/test/<concept>/ or <case>/multi/<A_B>/ folder (MC-LLaVA layout)")

    def scenario_of(self, concept_dir: Path) -> list[str]:
        """The concepts of the scenario a single-concept folder belongs to (its case's multi/<A_B>/ folder)."""
        concept = concept_dir.name
        case = concept_dir.parent.parent.parent
        for multi in self.multis:
            if multi.parent.parent == case and concept in multi.name.split("_"):
                return multi.name.split("_")
        return [concept]

    def image(self, key: str, folder: Path) -> str:
        """The key's image as a path under the root, wherever the authors kept it."""
        written = normalize_image_path(key)
        found = resolve_image(self.root, written)
        if found is None and (folder / Path(written).name).is_file():
            found = folder / Path(written).name
        return found.relative_to(self.root).as_posix() if found is not None else written

    def rel(self, folder: Path) -> str:
        return folder.relative_to(self.root).as_posix()


def _qa_pairs(data: object, path: Path) -> list[tuple[str, int, dict]]:
    """(image key, index, {"Human", "AI"}) of a choice.json / vqa.json, single or scenario shape."""
    expect(isinstance(data, dict), path, "expected image -> {Human, AI} (or a list of them)")
    out = []
    for key, qas in data.items():  # type: ignore[union-attr]
        for j, qa in enumerate(qas if isinstance(qas, list) else [qas]):
            expect(isinstance(qa, dict) and {"Human", "AI"} <= set(qa), path, f"{key}[{j}]: needs Human and AI")
            out.append((key, j, qa))
    return out


def _choice(question: str, answer: str, path: Path, where: str) -> tuple[str, dict[str, str], str]:
    split = split_options(strip_image_tag(question))
    expect(split is not None, path, f"{where}: no inline options (A. .. B. ..) in {question[:80]!r}")
    stem, options = split  # type: ignore[misc]
    letter = answer_letter(answer)
    expect(letter in options, path, f"{where}: answer {answer!r} is not one of the options {list(options)}")
    return stem, options, letter  # type: ignore[return-value]


def load_mcllava_native(root: Path, task: Task, benchmark: str | None = None) -> LoadedBenchmark:
    """Items of one MC-LLaVA task from the native layout (see the module docstring)."""
    root = Path(root)
    benchmark = benchmark or f"mc-llava-{task}"
    layout = _Layout(root)
    items: list[Item] = []
    folders = [(d, "single", layout.scenario_of(d)) for d in layout.singles]
    folders += [(d, "multi", d.name.split("_")) for d in layout.multis]
    for folder, group, scenario in folders:
        own = [folder.name] if group == "single" else scenario
        base = dict(benchmark=benchmark, group=group, cluster="_".join(scenario))
        if task == "caption":
            items += _captions(layout, folder, group, scenario, base)
            continue
        path = folder / _FILE[task]
        if not path.is_file():
            continue
        data = read_json(path)
        if task == "text":
            expect(isinstance(data, list), path, "expected a list of {question, answer}")
            for j, qa in enumerate(data):  # type: ignore[arg-type]
                expect(isinstance(qa, dict) and {"question", "answer"} <= set(qa), path, f"[{j}]: needs question, answer")
                stem, options, letter = _choice(qa["question"], qa["answer"], path, f"[{j}]")
                items.append(ChoiceItem(id=f"{layout.rel(folder)}/qa/{j}", concepts=concept_tags(stem) or own,
                                        question=stem, options=options, answer=letter, **base))
            continue
        for key, j, qa in _qa_pairs(data, path):
            image = layout.image(key, folder)
            item_id = f"{layout.rel(folder)}/{Path(normalize_image_path(key)).name}/{j}"
            if task == "choice":
                stem, options, letter = _choice(qa["Human"], qa["AI"], path, f"{key}[{j}]")
                items.append(ChoiceItem(id=item_id, concepts=concept_tags(stem) or own, question=stem,
                                        images=[image], options=options, answer=letter, **base))
            else:
                question = strip_image_tag(qa["Human"])
                items.append(OpenVQAItem(id=item_id, concepts=concept_tags(question) or own, question=question,
                                         images=[image], reference=str(qa["AI"]), **base))
    expect(bool(items), root, f"no {_FILE.get(task, 'caption')} items found under the MC-LLaVA layout")
    return finish_load(benchmark, root, items, root)


def _captions(layout: _Layout, folder: Path, group: str, scenario: list[str], base: dict) -> list[Item]:
    question = "Describe this image."
    if group == "single":
        return [CaptionItem(id=layout.rel(p), concepts=scenario, question=question, images=[layout.rel(p)],
                            present=[folder.name], **base) for p in list_images(folder)]
    path = folder / "position.json"
    if not path.is_file():
        return []
    data = read_json(path)
    expect(isinstance(data, dict), path, "expected image -> {concept: box or null}")
    out: list[Item] = []
    for key, positions in data.items():  # type: ignore[union-attr]
        expect(isinstance(positions, dict), path, f"{key}: expected concept -> box or null")
        image = layout.image(key, folder)
        out.append(CaptionItem(id=image, concepts=scenario, question=question, images=[image],
                               present=[c for c, box in positions.items() if box is not None], **base))
    return out


__all__ = ["load_mcllava_native"]

"""Training examples for the small VLM from the concept world, on the fly, in the runtime's own prompts.

Why the runtime's prompts: the recognition example is built with :func:`slc.agent.concept_prompts.build_prompt`
from a :class:`~slc.agent.detection.ConceptQuery` (category, description, identity attributes), so a
trained adapter is asked at inference exactly what it was trained on, and its Yes/No answer is read from
the same position (evaluation asks through the runtime's recognition protocols: :func:`recognition_pairs`). Three tasks (weights in :class:`TaskMix`):

- ``recognition``: the SMALL_RECOGNIZE prompt -> "Yes"/"No" (what the benchmark scores);
- ``describe``: "Describe the main object in this image." -> "a red striped star wearing a hat" (dense
  supervision, every identity leaf in one answer, that teaches the vision tower and connector the
  words of the tree); ``attribute``: the same one leaf at a time ("What is the colour ...?" -> "red");
- ``detection``: the SMALL_DETECT prompt -> SLC's per-concept JSON with the renderer's ground-truth
  locations (so the small VLM learns to emit the structured format the runtime parses).

Samples come from :func:`slc.cat.edits.sample_edits` (positives, easy and hard-k negatives) in "rounds":
round r uses ``plan.seed + r``, so the stream never repeats and is deterministic. A :class:`Curriculum`
can start with exact copies (no free-dimension variation) and easy negatives only, then ramp to the
full plan.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from slc.agent import prompts as P
from slc.agent.chat_inputs import chat_inputs
from slc.agent.concept_prompts import build_prompt, identity_text
from slc.agent.detection import ConceptQuery
from slc.agent.detector import RecognitionName
from slc.agent.recognition import RecognitionPair
from slc.cat.edits import Sample, SamplingPlan, sample_edits
from slc.cat.world import (
    ACCESSORIES,
    FREE_DIMS,
    IDENTITY_DIMS,
    PALETTE,
    PATTERNS,
    SHAPES,
    ConceptWorld,
    WorldConcept,
    describe,
)

if TYPE_CHECKING:
    from PIL.Image import Image
    from transformers import BatchFeature, ProcessorMixin

TaskName = Literal["recognition", "attribute", "detection"]

# Words of the concept world and of the runtime prompts; passed to build_scratch_vlm(extra_words=...) so each
# is one token (a colour split into bytes is far harder for a tiny model to bind to pixels).
WORLD_WORDS: tuple[str, ...] = (
    *SHAPES, *PALETTE, *PATTERNS, *ACCESSORIES,
    "wearing", "personal", "concept", "user", "Description", "Identifying", "attributes", "colour", "pattern",
    "accessory", "shape", "main", "object", "What", "present", "location", "relative", "absolute", "info",
)  # fmt: skip


class TaskMix(BaseModel):
    """Relative weights of the training tasks (normalized; 0 switches one off)."""

    model_config = ConfigDict(extra="forbid")

    recognition: float = Field(default=0.6, ge=0)
    attribute: float = Field(default=0.0, ge=0)
    describe: float = Field(default=0.3, ge=0, description="'Describe the main object' -> 'a red striped star wearing a hat'.")
    detection: float = Field(default=0.1, ge=0)

    def weights(self) -> dict[str, float]:
        w = self.model_dump()
        total = sum(w.values())
        if total <= 0:
            raise ValueError("TaskMix gives every task weight 0")
        return {k: v / total for k, v in w.items() if v > 0}


class Curriculum(BaseModel):
    """Easy before hard: for the first ``warm_rounds`` rounds no free-dimension variation and no hard
    negatives (replaced by easy ones, so the sample count is the same), then the full plan."""

    model_config = ConfigDict(extra="forbid")

    warm_rounds: int = Field(default=0, ge=0)


QueryStyle = Literal["full", "attributes", "description"]

# How recognition is asked (the runtime's ``DetectorConfig.recognition`` must match what the model learned):
# "yes_no": one turn, the concept question -> "Yes"/"No"; "describe": first turn "Describe the main object
# in this image." -> the model's own description (greedy), second turn the concept question -> "Yes"/"No",
# read from the logits. Why "describe": the Yes/No then compares the description's tokens with the
# concept's (text against identical text), and the description is a dense target learned directly
# from pixels, instead of a product of a random image feature and a random text feature (LEARNING-LOG).
# "likelihood": no question at all: recognition = P(the model describes the image as the concept's identity
# text) > 0.5; a recognition row is the describe prompt with the ASKED concept's identity text as the
# answer, labelled positive or negative (expected_present): the trainer maximizes that text's likelihood
# for positives and minimizes it (-log(1 - P)) for negatives, so CaT's hard negatives are exactly the
# near-miss descriptions the model must learn to reject. (The names: slc.agent.detector.RecognitionName.)


class PromptStyles(BaseModel):
    """How often a training prompt describes the concept by description + attributes ("full", what the
    runtime sends for a concept with a known identity), attributes only, or description only.

    Why a mix: the short forms halve the sequence (the cost of a CPU step) and make the model read
    either form; evaluation uses "full", the runtime's form.
    """

    model_config = ConfigDict(extra="forbid")

    full: float = Field(default=0.3, ge=0)
    attributes: float = Field(default=0.35, ge=0)
    description: float = Field(default=0.35, ge=0)


def concept_query(concept: WorldConcept, style: QueryStyle = "full") -> ConceptQuery:
    """How a world concept is described to the small VLM (text only: category, description, attributes)."""
    ident = concept.tree.identity()
    return ConceptQuery(
        name=concept.name,
        description=f"{concept.token} is {describe(concept.tree)}." if style != "attributes" else "",
        category=concept.tree.root,
        attributes=ident if style != "description" else {},
    )


def recognition_prompt(concept: WorldConcept, style: QueryStyle = "full") -> str:
    return build_prompt(concept_query(concept, style), "recognize", 0)


def detection_prompt(concept: WorldConcept, style: QueryStyle = "full") -> str:
    return build_prompt(concept_query(concept, style), "detect", 0)


def detection_target(concept: WorldConcept, sample: Sample, info: Any) -> str:
    """SLC's JSON for one concept, keyed by the bare name like the runtime's SMALL_DETECT example."""
    present = sample.expected_present
    body = {
        "present": present,
        "location-absolute": info.location_absolute if present else "",
        "location-relative": (info.location_relative or "") if present else "",
        "concept-info": f"I see {describe(sample.tree)}.",
    }
    return json.dumps({concept.name: body})


def attribute_example(sample: Sample, rng: random.Random) -> tuple[str, str]:
    dim = rng.choice(("shape", *IDENTITY_DIMS))
    if dim == "shape":
        return P.CAT_CATEGORY_QUESTION, sample.tree.root
    return P.CAT_ATTRIBUTE_QUESTION.format(dimension=dim), sample.tree.get(dim)


class Example(BaseModel):
    """One training/eval conversation: an image, the user text, the assistant answer, and its provenance."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Any
    text: str
    answer: str
    task: str
    concept: str
    difficulty: str
    expected_present: bool
    history: list[tuple[str, str]] = Field(default_factory=list, description="Earlier (user, assistant) turns.")
    description: str = Field(default="", description="What the image truly shows (describe_identity()).")
    query: ConceptQuery | None = Field(default=None, description=(
        "Evaluation rows: the asked concept as the runtime is told it (recognition protocols score it)."))
    negative_target: bool = Field(default=False, description=(
        "The answer is a text the model must NOT produce (a likelihood-protocol negative): trained with "
        "-log(1 - P(answer)) instead of -log P(answer)."))


def _plan_for_round(plan: SamplingPlan, curriculum: Curriculum, r: int) -> SamplingPlan:
    if r < curriculum.warm_rounds:
        return plan.model_copy(update={"diversity": 0.0, "easy": plan.easy + plan.hard, "hard": 0, "seed": plan.seed + r})
    return plan.model_copy(update={"seed": plan.seed + r})


def stream_examples(
    world: ConceptWorld,
    names: Sequence[str],
    plan: SamplingPlan,
    *,
    mix: TaskMix | None = None,
    curriculum: Curriculum | None = None,
    styles: PromptStyles | None = None,
    size: int = 64,
    seed: int = 0,
    start_round: int = 0,
    forbidden: Sequence[Any] = (),
    per_image: int = 1,
    contrast: bool = False,
    contrast_pool: Sequence[str] | None = None,
    protocol: RecognitionName = "yes_no",
) -> Iterator[Example]:
    """An endless, deterministic stream of training examples for the concepts ``names``.

    Each round samples the plan for every concept, shuffles across concepts, renders, and draws
    ``per_image`` tasks per rendered image from ``mix`` (rendering is the dominant CPU cost of a small
    step, so one image serves e.g. a recognition and an attribute question). ``forbidden`` trees
    (held-out concepts) never appear as negatives.

    ``contrast`` adds, per image, the recognition question whose answer is the opposite of the sample's:
    a negative image is asked about the training concept it actually shows ("Yes"), a positive one about
    a neighbour concept ("No": one identity leaf changed, or the shape for an easy-only plan). Such
    minimal pairs cancel the class prior and leave only "does the description match the pixels" to
    learn; it needs a world whose concepts cover the edits (e.g. ``make_world(1024)``, the full space).
    Contrast concepts are drawn from ``contrast_pool`` (default ``names``; never pass held-out names).

    ``protocol="describe"``: recognition rows carry the turn "Describe the main object in this image." ->
    the image's true description as history (labelled too when encoded for training).
    """
    from slc.cat.generators import ProceduralGenerator

    mix = mix or TaskMix()
    curriculum = curriculum or Curriculum()
    gen = ProceduralGenerator(size=size)
    weights = mix.weights()
    style_w = (styles or PromptStyles()).model_dump()
    style_names, style_p = list(style_w), list(style_w.values())
    tasks, task_w = list(weights), list(weights.values())
    by_name = {c.name: c for c in world}
    concepts = [by_name[n] for n in names]
    index = {_identity_key(by_name[n].tree): by_name[n] for n in (contrast_pool or names)}
    hard_share = plan.hard / max(1, plan.easy + plan.hard)
    r = start_round
    while True:
        round_plan = _plan_for_round(plan, curriculum, r)
        rng = random.Random(f"{seed}:{r}")
        pool = [(c, s) for c in concepts for s in sample_edits(c.name, c.tree, round_plan, world.vocabulary, list(forbidden))]
        rng.shuffle(pool)
        for concept, sample in pool:
            img, info = gen.generate_with_info(sample)
            history = describe_history(sample.tree) if protocol == "describe" else []
            truth = describe_identity(sample.tree)
            for _ in range(per_image):
                task = rng.choices(tasks, task_w)[0]
                style = rng.choices(style_names, style_p)[0]
                negative_target = False
                if task == "recognition" and protocol == "likelihood":
                    text, answer = P.SMALL_DESCRIBE_FIRST, describe_identity(concept.tree)
                    negative_target = not sample.expected_present
                elif task == "recognition":
                    text, answer = recognition_prompt(concept, style), sample.expected_answer
                elif task == "attribute":
                    text, answer = attribute_example(sample, rng)
                elif task == "describe" and protocol != "yes_no":  # the protocol's describe turn, alone
                    text, answer = P.SMALL_DESCRIBE_FIRST, truth
                elif task == "describe":
                    text, answer = P.CAT_DESCRIBE_QUESTION, describe(sample.tree)
                else:
                    text, answer = detection_prompt(concept, style), detection_target(concept, sample, info)
                yield Example(image=img, text=text, answer=answer, task=task, concept=concept.name,
                              difficulty=sample.difficulty, expected_present=sample.expected_present,
                              history=history if task == "recognition" else [], description=truth,
                              negative_target=negative_target)
            if contrast:
                other = _contrast_concept(sample, index, world, rng, hard_share)
                if other is not None:
                    style = rng.choices(style_names, style_p)[0]
                    present = not sample.expected_present
                    if protocol == "likelihood":
                        yield Example(image=img, text=P.SMALL_DESCRIBE_FIRST, answer=describe_identity(other.tree),
                                      task="recognition", concept=other.name, difficulty="contrast",
                                      expected_present=present, description=truth, negative_target=not present)
                        continue
                    yield Example(image=img, text=recognition_prompt(other, style), answer="Yes" if present else "No",
                                  task="recognition", concept=other.name, difficulty="contrast",
                                  expected_present=present, history=history, description=truth)
        r += 1


# The identity slots of describe_identity(), in order, with their values (the auxiliary head's classes).
ATTRIBUTE_SLOTS: tuple[tuple[str, ...], ...] = (SHAPES, tuple(PALETTE), PATTERNS, ACCESSORIES)


def attribute_labels(examples: Sequence["Example"]) -> Any:
    """(batch, 4) class indices of each example's true shape/colour/pattern/accessory; -100 if unknown."""
    import torch

    out = torch.full((len(examples), len(ATTRIBUTE_SLOTS)), -100, dtype=torch.long)
    for row, e in enumerate(examples):
        parts = [x.strip() for x in e.description.split(";")] if e.description else []
        if len(parts) != len(ATTRIBUTE_SLOTS):
            continue
        values = [parts[0].removeprefix("an ").removeprefix("a ")] + [x.split(":", 1)[-1].strip() for x in parts[1:]]
        for slot, (value, vocab) in enumerate(zip(values, ATTRIBUTE_SLOTS)):
            if value in vocab:
                out[row, slot] = vocab.index(value)
    return out


def describe_identity(tree: Any) -> str:
    """'a star; colour: red; pattern: solid; accessory: none': every identity leaf, named like the prompt.

    Why this form and not :func:`describe`: the recognition prompt names the concept as "(a star)" and
    "Identifying attributes: colour: red; pattern: solid; accessory: none"; with the same words in the
    same order on both sides every mismatch is a prompt token with no identical token in the
    description (describe() drops "solid" and "none", so a solid-vs-striped mismatch had no token).
    """
    ident = tree.identity()
    return identity_text(ConceptQuery(name="x", category=tree.root, attributes={d: ident.get(d, "") for d in IDENTITY_DIMS}))


def describe_history(tree: Any) -> list[tuple[str, str]]:
    """The describe-then-decide first turn with the true description (a training target)."""
    return [(P.SMALL_DESCRIBE_FIRST, describe_identity(tree))]


def _identity_key(tree: Any) -> tuple[str, ...]:
    return (tree.root, *(tree.identity().get(d, "") for d in IDENTITY_DIMS))


def _contrast_concept(
    sample: Sample, index: dict[tuple[str, ...], WorldConcept], world: ConceptWorld, rng: random.Random, hard_share: float
) -> WorldConcept | None:
    """The training concept the image shows (for a negative), or a neighbour of it (for a positive)."""
    key = _identity_key(sample.tree)
    if not sample.expected_present:
        return index.get(key)
    for _ in range(8):
        if rng.random() < hard_share:
            i = rng.randrange(1, len(key))
            dim = IDENTITY_DIMS[i - 1]
            values = [v for v in world.vocabulary.values[dim] if v != key[i]]
        else:
            i, values = 0, [v for v in world.vocabulary.roots if v != key[0]]
        cand = index.get(key[:i] + (rng.choice(values),) + key[i + 1 :])
        if cand is not None:
            return cand
    return None


def eval_examples(
    world: ConceptWorld, names: Sequence[str], *, positives: int = 6, easy: int = 3, hard: int = 6,
    size: int = 64, seed: int = 10_007, k_weights: dict[int, float] | None = None, diversity: float = 0.5,
) -> list[Example]:
    """A fixed recognition test set for ``names`` (the held-out concepts): positives, easy and hard negatives."""
    from slc.cat.generators import ProceduralGenerator

    plan = SamplingPlan(positives=positives, easy=easy, hard=hard, seed=seed, diversity=diversity,
                        **({"k_weights": k_weights} if k_weights else {}))
    gen = ProceduralGenerator(size=size)
    by_name = {c.name: c for c in world}
    out = []
    for n in names:
        c = by_name[n]
        for s in sample_edits(c.name, c.tree, plan, world.vocabulary):
            out.append(Example(image=gen.generate(s), text=recognition_prompt(c), answer=s.expected_answer,
                               task="recognition", concept=c.name, difficulty=s.difficulty,
                               expected_present=s.expected_present, description=describe_identity(s.tree),
                               query=concept_query(c)))
    return out


def recognition_pairs(examples: Sequence[Example]) -> list[RecognitionPair]:
    """Evaluation rows as the recognition protocols' questions (one photo per row, no reference photos)."""
    missing = [i for i, e in enumerate(examples) if e.query is None]
    if missing:
        raise ValueError(f"examples {missing[:5]} have no query (the asked concept); make them with eval_examples")
    return [RecognitionPair(image=e.image, image_key=i, query=e.query) for i, e in enumerate(examples)]


def reference_images(world: ConceptWorld, names: Sequence[str], n: int = 3, size: int = 64, seed: int = 0) -> dict[str, list["Image"]]:
    """The "user photos" of each concept (same rule as the CaT pipeline's references)."""
    from slc.cat.generators import ProceduralGenerator
    from slc.cat.pipeline import reference_samples

    gen = ProceduralGenerator(size=size)
    by_name = {c.name: c for c in world}
    return {
        name: [gen.generate(s) for s in reference_samples(name, by_name[name].tree, n, 0.3, seed, world.vocabulary)]
        for name in names
    }


def dataset_examples(folder: str | Any, split: str = "train") -> list[Example]:
    """Examples from a CaT dataset folder written by ``slc data generate`` (``train.jsonl``/``test.jsonl``).

    Each row's user text and assistant answer are used as they are (the CaT export's prompt forms);
    images are opened from the folder.
    """
    from pathlib import Path

    from PIL import Image

    root = Path(folder)
    path = root / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {root} a folder written by `slc data generate`?")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        user, assistant = row["messages"][0], row["messages"][1]
        text = next(c["text"] for c in user["content"] if c["type"] == "text")
        answer = next(c["text"] for c in assistant["content"] if c["type"] == "text")
        with Image.open(root / row["images"][0]) as im:
            image = im.convert("RGB")
        out.append(Example(image=image, text=text, answer=answer, task=row["task"], concept=row["concept"],
                           difficulty=row["difficulty"], expected_present=row["expected_present"]))
    return out


def cycle_examples(examples: Sequence[Example], seed: int = 0, start_round: int = 0) -> Iterator[Example]:
    """Endless reshuffled passes over a fixed list (epoch r shuffled with seed (seed, r))."""
    if not examples:
        raise ValueError("no examples to train on")
    r = start_round
    while True:
        order = list(examples)
        random.Random(f"{seed}:{r}").shuffle(order)
        yield from order
        r += 1


def encode(processor: ProcessorMixin, examples: Sequence[Example]) -> BatchFeature:
    """Batch of training inputs (right padding; labels on the answer tokens only)."""
    images = [[e.image] if e.image is not None else [] for e in examples]
    texts = [e.text for e in examples]
    history = [e.history for e in examples] if any(e.history for e in examples) else None
    return chat_inputs(processor, images, texts, answer=[e.answer for e in examples], padding_side="right",
                       history=history, label_history=history is not None)


__all__ = [
    "ATTRIBUTE_SLOTS", "attribute_labels", "describe_identity", "Curriculum", "Example", "describe_history", "cycle_examples", "dataset_examples", "FREE_DIMS", "PromptStyles", "TaskMix", "WORLD_WORDS", "concept_query", "detection_prompt",
    "detection_target", "encode", "eval_examples", "recognition_pairs", "recognition_prompt", "reference_images",
    "stream_examples",
]

"""Training the small VLM on concept-world data with the Hugging Face Trainer (full or LoRA).

Why the HF Trainer: users with GPUs get multi-GPU (torchrun / accelerate launch), DeepSpeed, bf16 and
gradient checkpointing through :class:`transformers.TrainingArguments` without any code here changing;
checkpoints and ``resume_from_checkpoint`` are the Trainer's own. What we add:

- :class:`TrainConfig`, a small peft-style config (what to train, how long, schedule, LoRA shape);
- a streaming dataset of rendered examples (:mod:`slc.training.data`), batched by task so short
  recognition prompts are not padded to the length of a JSON detection example;
- a CPU-time budget: ``budget_cpu_s`` stops training once the process has spent that much CPU time in
  training steps (evaluation excluded), and the warmup+cosine schedule runs over the budget instead of
  over steps, so a run of "N CPU-minutes" always anneals completely (the learning benchmark's clock);
- recognition evaluation on held-out concepts during training (:class:`RecognitionEvaluator`, through the
  runtime's own recognition protocols), logged as a curve of accuracy vs. CPU-minutes.

Stages: ``mode="full"`` fine-tunes every weight (the meta "pretraining" stage from a random or weak
base); ``mode="lora"`` trains a LoRA adapter on the language model's q/k/v/o/gate/up/down
(:func:`slc.agent.lora.language_model_lora_targets`), optionally plus the connector
(``lora_modules_to_save``), which is what the bank stores per meta-concept.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from slc.agent.chat_inputs import IGNORE_INDEX
from slc.agent.detector import DetectorConfig, RecognitionName
from slc.agent.inference import label_logprobs
from slc.agent.lora import language_model_lora_targets
from slc.agent.recognition import (
    DescribeRecognition,
    LikelihoodRecognition,
    ModelHandle,
    RecognitionPair,
    RecognitionResult,
    recognition_protocol,
    yes_no_token_ids,
)
from slc.training.data import recognition_pairs

if TYPE_CHECKING:
    from transformers import PreTrainedModel, ProcessorMixin

    from slc.training.data import Example

T = TypeVar("T")


class TrainConfig(BaseModel):
    """How to train one model or adapter (a small config object, like peft's LoraConfig)."""

    model_config = ConfigDict(extra="forbid")

    output_dir: str = Field(description="Checkpoints (checkpoint-N folders) and the final weights go here.")
    mode: Literal["full", "lora"] = "lora"
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many optimizer steps.")
    budget_cpu_s: float | None = Field(default=None, gt=0, description="Stop after this much training CPU time.")
    batch_size: int = Field(default=32, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    lr: float = Field(default=2e-3, gt=0)
    warmup: float = Field(default=0.05, ge=0, lt=1, description="Warmup as a fraction of steps or of the budget.")
    scheduler: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = Field(default=0.05, ge=0, le=1)
    weight_decay: float = Field(default=0.01, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(default="auto", description="auto: bf16 on CUDA, fp32 on CPU.")
    gradient_checkpointing: bool = False
    save_steps: int | None = Field(default=None, ge=1, description="Checkpoint every N steps (None: only at the end).")
    save_total_limit: int = Field(default=2, ge=1)
    eval_every_cpu_s: float | None = Field(default=None, gt=0, description="Evaluate every N training CPU-seconds.")
    eval_steps: int | None = Field(default=None, ge=1, description="...or every N steps.")
    logging_steps: int = Field(default=50, ge=1)
    progress: bool = True
    log_evals: bool = True  # one JSON line per evaluation on stdout (the curve), even without progress bars
    torch_threads: int | None = Field(default=None, ge=1)
    aux_attribute_weight: float = Field(default=0.0, ge=0, description=(
        "Deep supervision of the vision path: a training-only linear head on the connector's image tokens "
        "(mean+max pooled) predicts each identity slot of Example.description (shape, colour, pattern, "
        "accessory); its loss times this weight is added. The head is thrown away: the saved model is the "
        "plain architecture. 0 = off."))
    answer_weight: float = Field(default=1.0, gt=0, description=(
        "Loss weight of Yes/No answer tokens relative to every other labelled token (a describe-then-decide "
        "row labels ~15 description tokens and one decision: without a weight the decision gets 1/16 of "
        "the gradient)."))
    # LoRA
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    lora_modules_to_save: list[str] = Field(default_factory=list, description="e.g. ['connector'] to train it fully.")

    def model_post_init(self, __context: Any) -> None:
        if self.max_steps is None and self.budget_cpu_s is None:
            raise ValueError("TrainConfig needs max_steps or budget_cpu_s (or both: whichever comes first)")


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------


def task_batches(examples: Iterator["Example"], batch_size: int) -> Iterator["Example"]:
    """Re-order a stream so each run of ``batch_size`` consecutive examples has one task (less padding)."""
    pending: dict[str, list[Example]] = {}
    for e in examples:
        bucket = pending.setdefault(e.task, [])
        bucket.append(e)
        if len(bucket) == batch_size:
            yield from bucket
            pending[e.task] = []


def make_stream_dataset(make_stream: Callable[[int], Iterator["Example"]], batch_size: int) -> Any:
    """A torch IterableDataset over ``make_stream(start_round)`` (restarted per epoch/worker, deterministic)."""
    from torch.utils.data import IterableDataset

    class _Stream(IterableDataset):
        start_round = 0

        def __iter__(self) -> Iterator["Example"]:
            return task_batches(make_stream(self.start_round), batch_size)

    return _Stream()


class ExampleCollator:
    """Examples -> model inputs with labels on the answer tokens (right padding); with ``attributes`` also
    ``attr_labels`` (one class index per identity slot, -100 when unknown) for the auxiliary vision head."""

    def __init__(self, processor: Any, attributes: bool = False) -> None:
        self.processor = processor
        self.attributes = attributes

    def __call__(self, examples: Sequence["Example"]) -> dict[str, Any]:
        from slc.training.data import attribute_labels, encode

        batch = dict(encode(self.processor, examples))
        if self.attributes:
            batch["attr_labels"] = attribute_labels(examples)
        if any(e.negative_target for e in examples):
            import torch

            batch["row_negative"] = torch.tensor([e.negative_target for e in examples])
        return batch


def _connector(model: Any) -> Any:
    """The module whose output are the image tokens the language model reads (family-specific name)."""
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in ("connector", "multi_modal_projector", "merger"):
            return module
    raise ValueError(f"{type(model).__name__}: no connector/projector module for the auxiliary attribute head")


def sequence_loss(logits: Any, labels: Any, negative: Any) -> Any:
    """Per-row sequence loss: -log P(answer)/n for normal rows, -log(1 - P(answer)) for negative ones.

    ``P(answer)`` is the product of the labelled tokens' probabilities (teacher-forced), the quantity the
    likelihood readout thresholds at 0.5; the negative term only pushes near-misses the model finds likely.
    """
    import torch

    nll = -label_logprobs(logits, labels)  # -log P(answer) per row
    n = (labels[:, 1:] != IGNORE_INDEX).sum(-1).clamp_min(1)
    pos = nll / n
    neg = -torch.log(-torch.expm1(-nll.clamp_min(1e-4)))
    return torch.where(negative.to(nll.device), neg, pos).mean()


def _slc_trainer_class(base: Any) -> Any:
    """The Trainer with our extra batch keys: ``attr_labels`` (auxiliary attribute head, see
    TrainConfig.aux_attribute_weight) and ``row_negative`` (likelihood-protocol negatives, see
    :func:`sequence_loss`). Without them it is the plain Trainer."""
    import torch

    class SLCTrainer(base):
        aux_head: Any = None
        aux_weight: float = 0.0
        aux_sizes: list[int] = []

        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
            attr = inputs.pop("attr_labels", None)
            negative = inputs.pop("row_negative", None)
            if attr is not None and self.aux_head is None:
                attr = None
            captured: list[Any] = []
            handle = _connector(model).register_forward_hook(lambda m, i, o: captured.append(o)) if attr is not None else None
            labels = inputs.get("labels")
            try:
                loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
            finally:
                if handle is not None:
                    handle.remove()
            if negative is not None and labels is not None:
                loss = sequence_loss(outputs.logits, labels, negative)
            if attr is not None and captured and model.training:
                feats = captured[-1]
                feats = feats if feats.dim() == 3 else feats.unsqueeze(0)
                if feats.shape[0] == attr.shape[0]:  # one image per row
                    pooled = torch.cat([feats.mean(1), feats.amax(1)], dim=-1).float()
                    logits = self.aux_head(pooled)
                    aux, start = 0.0, 0
                    for slot, size in enumerate(self.aux_sizes):
                        if (attr[:, slot] != -100).any():  # else cross_entropy is nan
                            aux = aux + torch.nn.functional.cross_entropy(
                                logits[:, start : start + size], attr[:, slot], ignore_index=-100)
                        start += size
                    loss = loss + self.aux_weight * aux / len(self.aux_sizes)
            return (loss, outputs) if return_outputs else loss

    return SLCTrainer


# ----------------------------------------------------------------------------------------------------------
# Evaluation on held-out concepts
# ----------------------------------------------------------------------------------------------------------


class RecognitionScores(BaseModel):
    """Recognition accuracy on a labelled set: positives, easy and hard negatives, and the weighted means.

    ``weighted`` = (positive acc + negative acc) / 2 (balanced accuracy); ``weighted_easy`` and
    ``weighted_hard`` use only easy or only hard negatives on the negative side.
    """

    n: int
    positive: float
    negative: float
    easy: float | None
    hard: float | None
    weighted: float
    weighted_easy: float | None
    weighted_hard: float | None
    description_exact: float | None = None  # describe protocol: share of images described exactly right
    description_slots: list[float] | None = None  # ... per slot (shape, colour, pattern, accessory)
    decision_given_truth: float | None = None  # ... weighted accuracy when the true description is given
    likelihood: float | None = None  # ... weighted accuracy of the likelihood readout (P(concept's identity text) > 0.5)
    threshold: float | None = None  # likelihood protocol: the probability threshold used (calibrated on training concepts)

    @classmethod
    def from_predictions(cls, predictions: Sequence[bool], examples: Sequence["Example"]) -> "RecognitionScores":
        def acc(rows: list[bool]) -> float | None:
            return sum(rows) / len(rows) if rows else None

        pos = acc([p for p, e in zip(predictions, examples) if e.expected_present])
        neg = acc([not p for p, e in zip(predictions, examples) if not e.expected_present])
        easy = acc([not p for p, e in zip(predictions, examples) if e.difficulty == "easy"])
        hard = acc([not p for p, e in zip(predictions, examples) if e.difficulty.startswith("hard")])
        pos_, neg_ = pos or 0.0, neg or 0.0
        return cls(
            n=len(examples), positive=pos_, negative=neg_, easy=easy, hard=hard, weighted=(pos_ + neg_) / 2,
            weighted_easy=None if easy is None else (pos_ + easy) / 2,
            weighted_hard=None if hard is None else (pos_ + hard) / 2,
        )


class RecognitionEvaluator:
    """Recognition accuracy on labelled examples, decided by the runtime's own recognition protocol
    (:mod:`slc.agent.recognition`): Yes/No at the answer position, described first, or the likelihood.

    The examples carry the asked concept (``Example.query``, as :func:`slc.training.data.eval_examples`
    makes them). ``protocol="describe"``: each image is first described by the model itself; the examples'
    own history (the true description) is never used. ``protocol="likelihood"``: the probability threshold
    is re-chosen at every call on ``calibration`` (examples of TRAINING concepts, never the evaluated ones);
    0.5 without them.
    """

    def __init__(self, processor: ProcessorMixin, examples: Sequence["Example"], batch_size: int = 64,
                 protocol: RecognitionName = "yes_no", max_description_tokens: int = 16,
                 calibration: Sequence["Example"] = ()) -> None:
        self.config = DetectorConfig(recognition=protocol, max_description_tokens=max_description_tokens)
        self.processor = processor
        self.examples = list(examples)
        self.batch_size = batch_size
        self.protocol = protocol
        self.calibration = list(calibration)
        self.threshold = 0.5
        self.last_descriptions: list[str] = []

    def calibrate(self, model: PreTrainedModel) -> float:
        """Likelihood protocol: the threshold with the best weighted accuracy on the calibration examples."""
        if self.protocol != "likelihood" or not self.calibration:
            return self.threshold
        likelihood = LikelihoodRecognition()
        logprobs = self._in_eval(model, lambda handle: [
            lp for batch in self._batches(self.calibration) for lp in likelihood.logprobs(handle, batch)])
        self.threshold = best_threshold(logprobs, self.calibration)
        return self.threshold

    def predict(self, model: PreTrainedModel) -> list[bool]:
        """Present or not per example: the protocol's P(yes) > P(no)."""
        self.calibrate(model)
        protocol = recognition_protocol(self.config.model_copy(update={"likelihood_threshold": self.threshold}))
        results = self._in_eval(model, lambda handle: [
            r for batch in self._batches(self.examples) for r in protocol.score(handle, batch)])
        self.last_descriptions = [r.description for r in results if r.description is not None]
        return _decisions(results)

    def __call__(self, model: PreTrainedModel) -> RecognitionScores:
        scores = RecognitionScores.from_predictions(self.predict(model), self.examples)
        if self.protocol == "likelihood":
            scores = scores.model_copy(update={"threshold": self.threshold})
        truth = [e.description for e in self.examples]
        if self.last_descriptions and all(truth):
            exact = sum(d == t for d, t in zip(self.last_descriptions, truth)) / len(truth)
            parts = [[x.strip() for x in d.split(";")] for d in self.last_descriptions]
            true_parts = [[x.strip() for x in t.split(";")] for t in truth]
            per_slot = [sum(len(p) > i and p[i] == t[i] for p, t in zip(parts, true_parts)) / len(truth) for i in range(4)]
            # the decision alone: the same questions after the TRUE description (what the comparison learned)
            describe = DescribeRecognition()
            given = self._in_eval(model, lambda handle: [
                r for start, batch in zip(range(0, len(truth), self.batch_size), self._batches(self.examples))
                for r in describe.decide(handle, batch, truth[start : start + self.batch_size])])
            decision = RecognitionScores.from_predictions(_decisions(given), self.examples).weighted
            lik = RecognitionEvaluator(self.processor, self.examples, self.batch_size, protocol="likelihood")
            scores = scores.model_copy(update={"description_exact": exact, "description_slots": per_slot,
                                               "decision_given_truth": decision, "likelihood": lik(model).weighted})
        return scores

    def _batches(self, examples: Sequence["Example"]) -> Iterator[list[RecognitionPair]]:
        pairs = recognition_pairs(examples)
        for start in range(0, len(pairs), self.batch_size):
            yield pairs[start : start + self.batch_size]

    def _in_eval(self, model: PreTrainedModel, run: Callable[[ModelHandle], T]) -> T:
        """``run`` on the model in eval mode (restored afterwards: the evaluator runs inside training)."""
        was_training = model.training
        model.eval()
        try:
            return run(ModelHandle.of(model, self.processor))
        finally:
            model.train(was_training)


def _decisions(results: Sequence[RecognitionResult]) -> list[bool]:
    return [r.score is not None and r.score.p_yes > r.score.p_no for r in results]


def best_threshold(logprobs: Sequence[float], examples: Sequence["Example"]) -> float:
    """The probability threshold (log-spaced grid 1e-4 .. 0.9) maximizing weighted accuracy on ``examples``;
    ties go to the larger threshold (the stricter, less lenient rule)."""
    grid = [math.exp(math.log(1e-4) + i * (math.log(0.9) - math.log(1e-4)) / 59) for i in range(60)]
    best, best_acc = 0.5, -1.0
    for t in grid:
        acc = RecognitionScores.from_predictions([v > math.log(t) for v in logprobs], examples).weighted
        if acc >= best_acc:
            best, best_acc = t, acc
    return best


# ----------------------------------------------------------------------------------------------------------
# CPU clock, schedule, callbacks
# ----------------------------------------------------------------------------------------------------------


class TrainClock:
    """Process CPU time spent in training (evaluation time is subtracted by the callback)."""

    def __init__(self) -> None:
        self.start = time.process_time()
        self.excluded = 0.0
        self.wall_start = time.time()

    @property
    def cpu_s(self) -> float:
        return time.process_time() - self.start - self.excluded

    @property
    def wall_s(self) -> float:
        return time.time() - self.wall_start


#: Training progress in [0, 1] as virtual steps: transformers' schedule curves take step counts.
_PROGRESS_STEPS = 1_000_000


def lr_schedule(cfg: TrainConfig, clock: TrainClock) -> Callable[[int], float]:
    """The learning-rate factor at a step: transformers' warmup + cosine (down to ``min_lr_ratio``) or
    warmup + constant curve, run over training progress: the share of steps, or of the CPU budget when one
    is set (whichever is further), so a run of "N CPU-minutes" always anneals completely."""
    import torch
    from transformers import get_constant_schedule_with_warmup, get_cosine_with_min_lr_schedule_with_warmup

    # transformers' public schedules are step-driven LambdaLRs; their curve (lr_lambdas[0]) is read off a
    # stand-in optimizer and driven by progress (in _PROGRESS_STEPS virtual steps) instead of steps.
    stand_in = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    warmup = round(cfg.warmup * _PROGRESS_STEPS)
    schedule = (
        get_cosine_with_min_lr_schedule_with_warmup(stand_in, num_warmup_steps=warmup,
                                                    num_training_steps=_PROGRESS_STEPS, min_lr_rate=cfg.min_lr_ratio)
        if cfg.scheduler == "cosine"
        else get_constant_schedule_with_warmup(stand_in, num_warmup_steps=warmup)
    )
    curve = schedule.lr_lambdas[0]

    def progress(step: int) -> float:
        if cfg.budget_cpu_s is not None:
            frac = clock.cpu_s / cfg.budget_cpu_s
            if cfg.max_steps:
                frac = max(frac, step / cfg.max_steps)
            return min(1.0, frac)
        return min(1.0, step / max(1, cfg.max_steps or 1))

    def fn(step: int) -> float:
        p = progress(step)
        factor = float(curve(round(p * _PROGRESS_STEPS)))
        return max(1e-3, factor) if p < cfg.warmup else factor  # never a zero learning rate while warming up

    return fn


def _callbacks(cfg: TrainConfig, clock: TrainClock, evaluator: RecognitionEvaluator | None, curve: list[dict[str, Any]],
               label: str) -> list[Any]:
    from transformers import TrainerCallback

    class BudgetAndEval(TrainerCallback):
        next_eval = cfg.eval_every_cpu_s

        def _evaluate(self, state: Any, model: Any) -> None:
            t0 = time.process_time()
            scores = evaluator(model)  # type: ignore[misc]
            clock.excluded += time.process_time() - t0
            loss = next((h["loss"] for h in reversed(state.log_history) if "loss" in h), None)
            point = {"run": label, "step": state.global_step, "cpu_min": round(clock.cpu_s / 60, 3),
                     "wall_min": round(clock.wall_s / 60, 3), "train_loss": loss, **scores.model_dump()}
            curve.append(point)
            state.log_history.append({f"eval_{k}": v for k, v in point.items() if isinstance(v, (int, float))})
            if cfg.progress or cfg.log_evals:
                print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in point.items()}), flush=True)

        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> Any:
            over = cfg.budget_cpu_s is not None and clock.cpu_s >= cfg.budget_cpu_s
            if over:
                control.should_training_stop = True
                control.should_save = True
            if evaluator is not None and model is not None:
                due = (cfg.eval_steps and state.global_step % cfg.eval_steps == 0) or (
                    self.next_eval is not None and clock.cpu_s >= self.next_eval
                )
                if due and not over:
                    while self.next_eval is not None and clock.cpu_s >= self.next_eval:
                        self.next_eval += cfg.eval_every_cpu_s  # type: ignore[operator]
                    self._evaluate(state, model)
            return control

        def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> Any:
            if evaluator is not None and model is not None and (not curve or curve[-1]["step"] != state.global_step):
                self._evaluate(state, model)
            return control

    return [BudgetAndEval(), *([_labelled_progress(cfg, clock, label)] if cfg.progress else [])]


def _labelled_progress(cfg: TrainConfig, clock: TrainClock, label: str) -> Any:
    """One labelled bar per training run (stderr): the share done of whichever limit ends it, the steps
    budget or the CPU budget, so it reaches 100% when training stops (the Trainer's own bar counted steps
    towards a cap that the CPU budget usually ends first, and stopped at 50-80%), with step, loss and CPU
    time beside it. Replaces the Trainer's bar and its raw ``{'train_runtime': ...}`` log lines."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class LabelledProgress(TrainerCallback):
        bar: Any = None

        def done(self, step: int) -> float:
            shares = [step / cfg.max_steps if cfg.max_steps else 0.0,
                      clock.cpu_s / cfg.budget_cpu_s if cfg.budget_cpu_s else 0.0]
            return min(max(shares), 1.0)

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            limits = [f"{cfg.max_steps} steps" if cfg.max_steps else "", f"{cfg.budget_cpu_s / 60:.2f} CPU-min"
                      if cfg.budget_cpu_s else ""]
            self.bar = tqdm(total=100, desc=f"training {label} (up to {' or '.join(x for x in limits if x)})",
                            unit="%", bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}", mininterval=1.0)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            loss = next((h["loss"] for h in reversed(state.log_history) if "loss" in h), None)
            self.bar.n = round(100 * self.done(state.global_step))
            self.bar.set_postfix_str(f"step {state.global_step}, {clock.cpu_s / 60:.2f} CPU-min"
                                     + (f", loss {loss:.3f}" if loss is not None else ""))

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.n = 100 if control.should_training_stop or state.global_step >= args.max_steps else self.bar.n
                self.bar.close()

    return LabelledProgress()


def _answer_loss(processor: Any, cfg: TrainConfig) -> Callable[..., Any] | None:
    if cfg.answer_weight == 1.0:
        return None  # the model's own loss
    yes, no = yes_no_token_ids(processor)
    return weighted_token_loss([*yes, *no], cfg.answer_weight)


def weighted_token_loss(answer_ids: Sequence[int], weight: float) -> Callable[..., Any]:
    """A Trainer ``compute_loss_func``: next-token cross-entropy, tokens in ``answer_ids`` weighted ``weight``."""
    import torch

    ids = torch.tensor(sorted(set(answer_ids)))

    def loss_fn(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        logits = outputs.logits[:, :-1, :].float()
        target = labels[:, 1:]
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                               ignore_index=-100, reduction="none")
        flat = target.reshape(-1)
        w = (flat != -100).float()
        w = torch.where(torch.isin(flat, ids.to(flat.device)), w * weight, w)
        return (ce * w).sum() / w.sum().clamp_min(1.0)

    return loss_fn


# ----------------------------------------------------------------------------------------------------------
# The training entry point
# ----------------------------------------------------------------------------------------------------------


class TrainResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    output_dir: str
    steps: int
    cpu_s: float
    wall_s: float
    final_loss: float | None
    curve: list[dict[str, Any]]
    model: Any = Field(default=None, exclude=True, description="The trained model (PeftModel in lora mode).")


def prepare_model(model: Any, cfg: TrainConfig, adapter_name: str = "default") -> Any:
    """Make the right parameters trainable: everything (full) or a fresh LoRA on the language model."""
    if cfg.mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=language_model_lora_targets(model),
        modules_to_save=list(cfg.lora_modules_to_save) or None, bias="none",
    )  # fmt: skip
    return get_peft_model(model, lora, adapter_name=adapter_name)


def _latest_checkpoint(output_dir: str) -> tuple[str | None, int]:
    from transformers.trainer_utils import get_last_checkpoint

    if not Path(output_dir).is_dir():
        return None, 0
    last = get_last_checkpoint(output_dir)
    if last is None:
        return None, 0
    state = json.loads((Path(last) / "trainer_state.json").read_text())
    return last, int(state.get("global_step", 0))


def train(
    model: Any,
    processor: Any,
    make_stream: Callable[[int], Iterator["Example"]],
    cfg: TrainConfig,
    *,
    evaluator: RecognitionEvaluator | None = None,
    resume: bool | str = False,
    label: str = "train",
) -> TrainResult:
    """Train ``model`` (already prepared with :func:`prepare_model`) on the stream; returns metrics + curve.

    ``make_stream(start_round)`` builds the example stream; on resume it is restarted at the resumed
    step (so no example is repeated and none is re-rendered just to be skipped). ``resume``: True picks
    the latest ``checkpoint-*`` in ``output_dir``, a string names one.
    """
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    set_seed(cfg.seed)
    device = next(model.parameters()).device
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    use_fp16 = cfg.precision == "fp16"
    checkpoint, resumed_step = (None, 0)
    if resume:
        checkpoint, resumed_step = _latest_checkpoint(cfg.output_dir) if resume is True else (str(resume), 0)
        if checkpoint and resume is not True:
            resumed_step = int(json.loads((Path(checkpoint) / "trainer_state.json").read_text())["global_step"])
    dataset = make_stream_dataset(make_stream, cfg.batch_size)
    dataset.start_round = resumed_step  # rounds are cheap to skip: a fresh seed stream per resumed step
    clock = TrainClock()
    curve: list[dict[str, Any]] = []
    args = TrainingArguments(
        output_dir=cfg.output_dir,
        max_steps=cfg.max_steps or 10**9,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        adam_beta2=0.98,
        logging_steps=cfg.logging_steps,
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=cfg.save_total_limit,
        bf16=use_bf16,
        fp16=use_fp16,
        activation_checkpointing=cfg.gradient_checkpointing,
        seed=cfg.seed,
        data_seed=cfg.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ignore_data_skip=True,
        report_to=[],
        disable_tqdm=True,  # the labelled bar of _labelled_progress instead
        use_cpu=device.type == "cpu",
    )
    params = [p for p in model.parameters() if p.requires_grad]
    aux_head = None
    if cfg.aux_attribute_weight > 0:
        from slc.training.data import ATTRIBUTE_SLOTS

        hidden = _connector(model).modality_projection.proj.out_features if hasattr(
            _connector(model), "modality_projection") else model.config.text_config.hidden_size
        aux_head = torch.nn.Linear(2 * hidden, sum(len(v) for v in ATTRIBUTE_SLOTS)).to(device)
        params += list(aux_head.parameters())
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.98),
    )  # fmt: skip
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(cfg, clock))
    trainer_cls = _slc_trainer_class(Trainer)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=ExampleCollator(processor, attributes=aux_head is not None),
        optimizers=(optimizer, scheduler),
        callbacks=_callbacks(cfg, clock, evaluator, curve, label),
        compute_loss_func=_answer_loss(processor, cfg),
    )
    if aux_head is not None:
        from slc.training.data import ATTRIBUTE_SLOTS

        trainer.aux_head, trainer.aux_weight = aux_head, cfg.aux_attribute_weight
        trainer.aux_sizes = [len(v) for v in ATTRIBUTE_SLOTS]
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)  # progress is our labelled bar (cfg.progress), not raw log dicts
    trainer.remove_callback(PrinterCallback)
    out = trainer.train(resume_from_checkpoint=checkpoint)
    if cfg.save_steps:
        trainer.save_model(cfg.output_dir)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return TrainResult(
        output_dir=cfg.output_dir, steps=int(out.global_step), cpu_s=round(clock.cpu_s, 2),
        wall_s=round(clock.wall_s, 2), final_loss=losses[-1] if losses else None, curve=curve, model=model,
    )


__all__ = [
    "best_threshold", "lr_schedule", "sequence_loss", "ExampleCollator", "RecognitionEvaluator", "RecognitionScores", "TrainClock", "TrainConfig", "TrainResult",
    "make_stream_dataset", "prepare_model", "task_batches", "train",
]

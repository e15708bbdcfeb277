"""The one place that loads image-text-to-text models and their processors, for users and for us.

Why one place: the runtime, training, evals and the CLI must agree on device/dtype defaults, on how a
missing torchvision is handled (transformers 5 processors with a video part need it) and on what a
person sees when a model id cannot be found offline. It also holds the two small helpers every caller
of a small VLM needs: :func:`chat_inputs` (PIL images + a message -> model inputs through the family's
own chat template) and :func:`yes_no_token_ids` (which vocabulary ids mean "Yes"/"No").
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from slc.agent.errors import DeviceUnavailableError, ModelNotFoundError, UnsupportedModelError

if TYPE_CHECKING:  # keep `import slc.agent.loading` cheap; torch/transformers load on first use
    import torch
    from PIL.Image import Image
    from transformers import BatchFeature, PreTrainedModel, ProcessorMixin

logger = logging.getLogger(__name__)

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16", "half": "float16"}  # fmt: skip
IGNORE_INDEX = -100  # label value the transformers losses skip


# ----------------------------------------------------------------------------------------------------------
# Device and dtype
# ----------------------------------------------------------------------------------------------------------


def resolve_device_dtype(device: Any = "auto", dtype: Any = "auto") -> tuple[torch.device, torch.dtype]:
    """Turn the user's ``device``/``dtype`` (strings from settings, or torch objects) into torch objects.

    ``auto`` picks CUDA, then MPS, then CPU; dtype ``auto`` is bfloat16 on CUDA (float16 where the GPU
    has no bf16), float16 on MPS and float32 on CPU, where half precision is slow and lossy.
    """
    import torch

    if isinstance(device, torch.device):
        dev = device
    else:
        name = str(device or "auto").strip().lower()
        if name == "auto":
            if torch.cuda.is_available():
                name = "cuda"
            elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
                name = "mps"
            else:
                name = "cpu"
        try:
            dev = torch.device(name)
        except RuntimeError as exc:
            raise DeviceUnavailableError(f"Unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"Device {device!r} asked for, but this torch has no CUDA GPU "
                f"(torch {torch.__version__}). Set SLC_SMALL__DEVICE=cpu or auto."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"Device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceUnavailableError(f"Device {device!r} asked for, but MPS is not available here")

    if isinstance(dtype, torch.dtype):
        return dev, dtype
    key = str(dtype or "auto").strip().lower().removeprefix("torch.")
    if key == "auto":
        if dev.type == "cuda":
            return dev, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return dev, torch.float16 if dev.type == "mps" else torch.float32
    if key not in _DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16")
    return dev, getattr(torch, _DTYPES[key])


# ----------------------------------------------------------------------------------------------------------
# Locating a checkpoint
# ----------------------------------------------------------------------------------------------------------


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))  # fmt: skip


def _looks_like_path(ref: str) -> bool:
    """A hub id is "name" or "org/name"; anything else (absolute, relative, ~, a/b/c, backslashes) is a path."""
    return ref.startswith(("/", ".", "~")) or "\\" in ref or ref.count("/") > 1 or ref.endswith("/")


def _not_found(ref: str, why: str) -> ModelNotFoundError:
    hub = (
        "the Hugging Face hub is switched off (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE) and it is not in the local cache"
        if _offline()
        else "it could not be fetched from the Hugging Face hub (unreachable, unknown id, or gated)"
    )
    return ModelNotFoundError(
        f"Cannot load model {ref!r}: {why or hub}. Point SLC_SMALL__MODEL (or [small] model in slc.toml) at a "
        "local folder holding config.json and the weights (e.g. one saved with save_pretrained, or built with "
        "slc.testing.build_tiny_vlm), or download the checkpoint on a machine with hub access first."
    )


def resolve_checkpoint(path_or_id: str | os.PathLike[str]) -> str:
    """Return a loadable reference: an absolute local folder, or a hub id; raise ModelNotFoundError early.

    Why early: a typo'd path otherwise surfaces as a hub connection error deep inside transformers.
    """
    ref = os.fspath(path_or_id).strip()
    if not ref:
        raise _not_found(ref, "the model reference is empty")
    local = Path(ref).expanduser()
    if local.exists():
        if not local.is_dir():
            raise _not_found(ref, f"{local} is a file; a checkpoint is a folder with config.json")
        if not (local / "config.json").is_file():
            raise _not_found(ref, f"the folder {local.resolve()} has no config.json, so it is not a transformers checkpoint")
        return str(local.resolve())
    if _looks_like_path(ref):
        raise _not_found(ref, f"there is no folder {local.resolve()}")
    return ref  # a hub id ("org/name"); availability is checked by the loader


def _hub_file(ref: str, name: str) -> str | None:
    """Path of ``name`` in a local folder or the hub cache/hub; None where it is absent or unreachable."""
    from transformers.utils import cached_file

    try:
        return cached_file(
            ref,
            name,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            _raise_exceptions_for_gated_repo=False,
        )
    except OSError:
        return None


def _standard_processor_class(ref: str) -> str | None:
    """The processor class a checkpoint names (processor/preprocessor/tokenizer config), else its model type's."""
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        path = _hub_file(ref, name)
        if path is None:
            continue
        try:
            found = json.loads(Path(path).read_text()).get("processor_class")
        except (OSError, ValueError):
            continue
        if found:
            return str(found)
    config_path = _hub_file(ref, "config.json")
    if config_path is None:
        return None
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    try:
        model_type = json.loads(Path(config_path).read_text()).get("model_type")
    except (OSError, ValueError):
        return None
    return PROCESSOR_MAPPING_NAMES.get(model_type)


# ----------------------------------------------------------------------------------------------------------
# Processor and model
# ----------------------------------------------------------------------------------------------------------


def torchvision_available() -> bool:
    """Whether torchvision imports here (then the standard processors with a video part work)."""
    from transformers.utils import is_torchvision_available

    return bool(is_torchvision_available())


@lru_cache(maxsize=1)
def _register_videoless() -> None:
    """Let AutoProcessor resolve the video-less class names (and serve them for these configs)."""
    from transformers import (
        AutoProcessor,
        LlavaOnevisionConfig,
        Qwen2_5_VLConfig,
        Qwen2VLConfig,
        SmolVLMConfig,
    )

    from slc.agent import processors as p

    for config_cls, proc_cls in (
        (Qwen2VLConfig, p.VideolessQwen2VLProcessor),
        (Qwen2_5_VLConfig, p.VideolessQwen2_5_VLProcessor),
        (LlavaOnevisionConfig, p.VideolessLlavaOnevisionProcessor),
        (SmolVLMConfig, p.VideolessSmolVLMProcessor),
    ):
        AutoProcessor.register(config_cls, proc_cls, exist_ok=True)


def load_processor(path_or_id: str | os.PathLike[str], **kwargs: Any) -> ProcessorMixin:
    """Load a checkpoint's processor through AutoProcessor, video-less where torchvision is missing.

    Where torchvision is installed this is exactly ``AutoProcessor.from_pretrained``. Where it is not, a
    checkpoint whose processor carries a video part (Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision, SmolVLM) is
    loaded with the matching class from :mod:`slc.agent.processors`, which is identical for images and
    text; a log line says so. ``kwargs`` go to ``from_pretrained``.
    """
    from transformers import AutoProcessor

    ref = resolve_checkpoint(path_or_id)
    try:
        if not torchvision_available():
            from slc.agent.processors import VIDEOLESS_PROCESSORS

            standard = _standard_processor_class(ref)
            if standard in VIDEOLESS_PROCESSORS:
                _register_videoless()
                cls = VIDEOLESS_PROCESSORS[standard]
                logger.info(
                    "torchvision is not installed: loading %s for %s without its video processor (%s; images only)",
                    standard, ref, cls.__name__,
                )  # fmt: skip
                return cls.from_pretrained(ref, **kwargs)
        return AutoProcessor.from_pretrained(ref, **kwargs)
    except OSError as exc:  # transformers reports missing repos, files and offline misses as OSError
        raise _not_found(ref, "") from exc


def load_vlm(
    path_or_id: str | os.PathLike[str],
    device: Any = "auto",
    dtype: Any = "auto",
    **model_kwargs: Any,
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Load an image-text-to-text checkpoint (local folder or hub id) and its processor, ready for inference.

    The model is in eval mode on ``device`` with ``dtype`` (see :func:`resolve_device_dtype`). Raises
    :class:`ModelNotFoundError` when the reference is neither a checkpoint folder nor obtainable (the hub
    is unreachable or switched off here), and :class:`UnsupportedModelError` for a checkpoint that is
    not an image-text-to-text model. ``model_kwargs`` go to ``from_pretrained`` (e.g. ``attn_implementation``).
    """
    from transformers import AutoModelForImageTextToText

    ref = resolve_checkpoint(path_or_id)
    dev, torch_dtype = resolve_device_dtype(device, dtype)
    try:
        model = AutoModelForImageTextToText.from_pretrained(ref, dtype=torch_dtype, **model_kwargs)
    except OSError as exc:
        raise _not_found(ref, "") from exc
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc) or "Unrecognized model" in str(exc):
            raise UnsupportedModelError(
                f"{ref!r} is not an image-text-to-text model (AutoModelForImageTextToText cannot load it): {exc}"
            ) from exc
        raise
    model.to(dev)
    model.eval()
    processor = load_processor(ref)
    logger.info("loaded %s (%s) on %s as %s", ref, type(model).__name__, dev, torch_dtype)
    return model, processor


DEFAULT_LORA_LEAVES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def language_model_lora_targets(model: Any, leaves: Sequence[str] = DEFAULT_LORA_LEAVES) -> list[str]:
    """Full names of the language model's Linear layers whose last name part is in ``leaves``.

    Why: LoRA for personalization belongs in the language model, but vision towers reuse the same leaf
    names (SigLIP's ``q_proj``), so a bare ``["q_proj", "v_proj"]`` would adapt the vision tower as well.
    The language model is found with ``get_decoder()``, which every image-text-to-text class provides,
    so this works for any family. Pass the result as ``LoraConfig(target_modules=...)``.
    """
    import torch

    decoder = model.get_decoder()
    prefix = next((name for name, module in model.named_modules() if module is decoder), None)
    if prefix is None:
        raise UnsupportedModelError(f"{type(model).__name__} does not expose its language model via get_decoder()")
    wanted = set(leaves)
    targets = [
        f"{prefix}.{name}" if prefix else name
        for name, module in decoder.named_modules()
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in wanted
    ]
    if not targets:
        raise UnsupportedModelError(f"No Linear layers named {sorted(wanted)} in {type(decoder).__name__}")
    return targets


# ----------------------------------------------------------------------------------------------------------
# Token ids and inputs
# ----------------------------------------------------------------------------------------------------------

YES_WORDS = ("Yes", " Yes", "yes", " yes", "YES", " YES")
NO_WORDS = ("No", " No", "no", " no", "NO", " NO")


def yes_no_token_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Ids of every single-token spelling of "Yes" and of "No" (with/without leading space, any case).

    Why lists: depending on the tokenizer and the template, the first answer token may be "Yes" or " Yes";
    the detector sums the probabilities of all spellings, so it is robust to both. Raises
    :class:`UnsupportedModelError` when the vocabulary has no single-token "Yes" or "No".
    """
    tok = getattr(tokenizer, "tokenizer", tokenizer)  # accept a processor too

    def single(words: Sequence[str]) -> list[int]:
        ids: list[int] = []
        for word in words:
            encoded = tok.encode(word, add_special_tokens=False)
            if len(encoded) == 1 and encoded[0] not in ids:
                ids.append(int(encoded[0]))
        return ids

    yes, no = single(YES_WORDS), single(NO_WORDS)
    if not yes or not no or set(yes) & set(no):
        raise UnsupportedModelError(
            f"The tokenizer has no distinct single-token Yes/No (yes={yes}, no={no}); the detector cannot score it"
        )
    return yes, no


def _as_image_list(images: Any) -> list[Image]:
    if images is None:
        return []
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]


def chat_messages(
    n_images: int,
    text: str,
    *,
    system: str | None = None,
    answer: str | None = None,
    history: Sequence[tuple[str, str]] = (),
) -> list[dict[str, Any]]:
    """The family-agnostic conversation: images first, then the text, in one user turn.

    ``history``: earlier (user text, assistant reply) turns; the images then go with the FIRST user turn
    (e.g. the describe-then-decide protocol: "Describe the main object" -> the model's own description,
    then the concept question), so every turn after it sees them.
    """
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    turns = [*history, (text, answer)]
    for i, (user, reply) in enumerate(turns):
        content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)] if i == 0 else []
        content.append({"type": "text", "text": user})
        messages.append({"role": "user", "content": content})
        if reply is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": reply}]})
    return messages


def chat_prompt(
    processor: Any, n_images: int, text: str, *, system: str | None = None, history: Sequence[tuple[str, str]] = ()
) -> str:
    """The prompt string (with the assistant turn opened) that the family's chat template renders."""
    return processor.apply_chat_template(
        chat_messages(n_images, text, system=system, history=history), add_generation_prompt=True, tokenize=False
    )


def chat_inputs(
    processor: Any,
    images: Any,
    text: str | Sequence[str],
    *,
    system: str | None = None,
    answer: str | Sequence[str] | None = None,
    device: Any = None,
    dtype: Any = None,
    padding_side: Literal["left", "right"] = "left",
    history: Sequence[Sequence[tuple[str, str]]] | None = None,
    label_history: bool = False,
) -> BatchFeature:
    """Model inputs for PIL image(s) and a user message, through the processor's own chat template.

    One sample: ``images`` is an image or a list of images and ``text`` a string. A batch: ``text`` is a
    list of strings and ``images`` a list of the same length, each item an image or a list of images.
    The prompt ends with the opened assistant turn (``add_generation_prompt=True``), so ``generate`` and
    the next-token logits answer the message. Left padding (the default) is what batched generation needs.

    With ``answer`` (training), the answer and the tokenizer's end-of-sequence token are appended after
    the prompt and ``labels`` are returned: the answer tokens, with every prompt and padding position set
    to -100, so the loss teaches exactly what generation will produce after this prompt.

    ``device`` moves all tensors; ``dtype`` casts floating ones (pixel values) to the model's dtype.

    ``history``: per sample, earlier (user, assistant) turns (see :func:`chat_messages`); with
    ``label_history`` the earlier assistant replies are labelled too (training the describe-then-decide
    protocol teaches the description and the decision in one row).
    """
    batched = not isinstance(text, str)
    texts = list(text) if batched else [text]
    if batched:
        if not isinstance(images, (list, tuple)) or len(images) != len(texts):
            raise ValueError("For a batch, pass one image (or list of images) per text, as a list of the same length")
        per_sample = [_as_image_list(i) for i in images]
    else:
        per_sample = [_as_image_list(images)]
    answers: list[str] | None = None
    if answer is not None:
        answers = [answer] if isinstance(answer, str) else list(answer)
        if len(answers) != len(texts):
            raise ValueError(f"Got {len(answers)} answers for {len(texts)} texts")

    tokenizer = processor.tokenizer
    histories = [list(h) for h in history] if history is not None else [[] for _ in texts]
    if len(histories) != len(texts):
        raise ValueError(f"Got {len(histories)} histories for {len(texts)} texts")
    prompts = [chat_prompt(processor, len(imgs), t, system=system, history=h)
               for imgs, t, h in zip(per_sample, texts, histories)]
    full = prompts if answers is None else [p + a + (tokenizer.eos_token or "") for p, a in zip(prompts, answers)]
    flat_images = [img for imgs in per_sample for img in imgs]
    call_kwargs: dict[str, Any] = {"text": full, "return_tensors": "pt", "padding": True, "padding_side": padding_side}
    if flat_images:
        # One list per sample keeps the image->sample assignment explicit for every family.
        call_kwargs["images"] = per_sample if any(len(i) != 1 for i in per_sample) or batched else flat_images
    inputs = processor(**call_kwargs)
    if answers is not None:
        inputs["labels"] = _answer_labels(processor, inputs, answers, per_sample, prompts, call_kwargs)
        if label_history:
            _label_history(processor, inputs, histories)
    if device is not None or dtype is not None:
        inputs = _move(inputs, device, dtype)
    return inputs


def _answer_labels(
    processor: Any,
    inputs: Any,
    answers: list[str],
    per_sample: list[list[Any]],
    prompts: list[str],
    call_kwargs: dict[str, Any],
) -> torch.Tensor:
    """Labels = input ids on the answer tokens (answer + eos) only; -100 everywhere else."""
    tokenizer = processor.tokenizer
    ids = inputs["input_ids"]
    mask = inputs["attention_mask"]
    labels = ids.new_full(ids.shape, IGNORE_INDEX)
    for row, answer in enumerate(answers):
        tail = tokenizer.encode(answer + (tokenizer.eos_token or ""), add_special_tokens=False)
        positions = mask[row].nonzero().flatten()
        start = positions[-len(tail)] if len(tail) <= len(positions) else None
        if start is not None and ids[row, positions[-len(tail):]].tolist() == tail:
            labels[row, positions[-len(tail):]] = ids[row, positions[-len(tail):]]
            continue
        # The answer merged with the prompt's last token: count the prompt's own tokens instead (exact, slower).
        kwargs = dict(call_kwargs, text=[prompts[row]], padding=False)
        if per_sample[row]:
            kwargs["images"] = [per_sample[row]]
        else:
            kwargs.pop("images", None)
        n_prompt = processor(**kwargs)["input_ids"].shape[1]
        keep = positions[n_prompt:]
        labels[row, keep] = ids[row, keep]
    return labels


def describe_images(model: Any, processor: Any, images: Sequence[Any], *, max_new_tokens: int = 16) -> list[str]:
    """The model's own greedy description of each image (``SMALL_DESCRIBE_FIRST``), one batched generate.

    The first turn of describe-then-decide recognition: shared by the runtime (``SmallVLM``) and the
    training evaluator so both ask exactly the same thing. ``images``: one image or list of images per row.
    """
    import torch

    from slc.agent import prompts as P

    param = next(model.parameters())
    dtype = param.dtype if param.is_floating_point() else None
    inputs = chat_inputs(processor, list(images), [P.SMALL_DESCRIBE_FIRST] * len(images), device=param.device, dtype=dtype)
    tok = processor.tokenizer
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    texts = tok.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return [t.strip() for t in texts]


def description_logprobs(model: Any, processor: Any, images: Sequence[Any], descriptions: Sequence[str]) -> list[float]:
    """log P(description | image, SMALL_DESCRIBE_FIRST) per row: the sum of the description's token
    log-probabilities (teacher-forced, end-of-turn token included) in one batched forward pass.

    Why: the likelihood readout of recognition. exp() of it is the model's probability that its
    description of the image is exactly the concept's identity text, so recognition needs no learned
    comparison at all, only the describe task.
    """
    import torch

    from slc.agent import prompts as P

    param = next(model.parameters())
    dtype = param.dtype if param.is_floating_point() else None
    inputs = chat_inputs(processor, list(images), [P.SMALL_DESCRIBE_FIRST] * len(images), answer=list(descriptions),
                         device=param.device, dtype=dtype, padding_side="right")
    labels = inputs.pop("labels")
    with torch.inference_mode():
        logits = model(**inputs).logits[:, :-1, :].float()
    target = labels[:, 1:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return (logp * (target != IGNORE_INDEX)).sum(-1).tolist()


def _label_history(processor: Any, inputs: Any, histories: list[list[tuple[str, str]]]) -> None:
    """Label each earlier assistant reply (+ the end-of-turn token when it follows) in ``inputs["labels"]``.

    Found as a token subsequence of the row, searched left to right after the previous match (a reply is
    tokenized with and without a leading space: templates put "Assistant: " or a newline before it).
    """
    tok = processor.tokenizer
    eos = tok.convert_tokens_to_ids(tok.eos_token) if tok.eos_token else None
    ids, labels = inputs["input_ids"], inputs["labels"]
    for row, turns in enumerate(histories):
        seq = ids[row].tolist()
        cursor = 0
        for _, reply in turns:
            found = None
            for form in (" " + reply, reply):
                sub = tok.encode(form, add_special_tokens=False)
                for start in range(cursor, len(seq) - len(sub) + 1):
                    if seq[start : start + len(sub)] == sub:
                        found = (start, start + len(sub))
                        break
                if found:
                    break
            if found is None:
                raise ValueError(f"assistant reply {reply!r} not found in the tokenized conversation of row {row}")
            end = found[1] + (1 if eos is not None and found[1] < len(seq) and seq[found[1]] == eos else 0)
            labels[row, found[0] : end] = ids[row, found[0] : end]
            cursor = end


def _move(inputs: Any, device: Any, dtype: Any) -> Any:
    import torch

    for key, value in list(inputs.items()):
        if not isinstance(value, torch.Tensor):
            continue
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        if device is not None:
            value = value.to(device)
        inputs[key] = value
    return inputs

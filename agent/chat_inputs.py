"""PIL images + a conversation -> model inputs through the family's own chat template, and training labels.

Why one place: the runtime, the training data and the evals must render a question exactly alike, or a
trained adapter is asked at inference something it never saw. Images always go first in the first user
turn (reference photos, then the photo to check), text after them.

Labels (training): only the assistant's answer (and the end-of-sequence token after it) is labelled; every
prompt and padding position is -100. The tokenizer can report assistant tokens itself
(``apply_chat_template(..., return_assistant_tokens_mask=True)``), but only for chat templates that mark
the assistant turn with ``{% generation %}``; none of the families we run do (the SmolVLM/Idefics3,
Qwen2-VL, Qwen2.5-VL and LLaVA-OneVision templates on the hub, and our tiny checkpoints' copies of them),
so the mask would be all zeros. The answer's tokens are therefore found here: as the tail of the row, or
counted from the prompt's own length when the answer merged with the prompt's last token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # keep `import slc.agent.chat_inputs` cheap; torch/transformers load on first use
    import torch
    from PIL.Image import Image
    from transformers import BatchFeature, ProcessorMixin

    #: one sample: an image or a list of images; a batch: one of those per text
    ImagesArg = Image | Sequence[Image] | Sequence[Image | Sequence[Image]] | None

IGNORE_INDEX = -100  # label value the transformers losses skip

Turn = tuple[str, str]  # (user text, assistant reply)
Message = dict[str, object]


def chat_messages(
    n_images: int,
    text: str,
    *,
    system: str | None = None,
    answer: str | None = None,
    history: Sequence[Turn] = (),
) -> list[Message]:
    """The family-agnostic conversation: images first, then the text, in one user turn.

    ``history``: earlier (user text, assistant reply) turns; the images then go with the FIRST user turn
    (e.g. the describe-then-decide protocol: "Describe the main object" -> the model's own description,
    then the concept question), so every turn after it sees them.
    """
    messages: list[Message] = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    turns = [*history, (text, answer)]
    for i, (user, reply) in enumerate(turns):
        content: list[dict[str, str]] = [{"type": "image"} for _ in range(n_images)] if i == 0 else []
        content.append({"type": "text", "text": user})
        messages.append({"role": "user", "content": content})
        if reply is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": reply}]})
    return messages


def chat_prompt(
    processor: ProcessorMixin, n_images: int, text: str, *, system: str | None = None, history: Sequence[Turn] = ()
) -> str:
    """The prompt string (with the assistant turn opened) that the family's chat template renders."""
    return processor.apply_chat_template(
        chat_messages(n_images, text, system=system, history=history), add_generation_prompt=True, tokenize=False
    )


def chat_inputs(
    processor: ProcessorMixin,
    images: ImagesArg,
    text: str | Sequence[str],
    *,
    system: str | None = None,
    answer: str | Sequence[str] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    padding_side: Literal["left", "right"] = "left",
    history: Sequence[Sequence[Turn]] | None = None,
    label_history: bool = False,
) -> BatchFeature:
    """Model inputs for PIL image(s) and a user message, through the processor's own chat template.

    One sample: ``images`` is an image or a list of images and ``text`` a string. A batch: ``text`` is a
    list of strings and ``images`` a list of the same length, each item an image or a list of images.
    The prompt ends with the opened assistant turn (``add_generation_prompt=True``), so ``generate`` and
    the next-token logits answer the message. Left padding (the default) is what batched generation needs.

    With ``answer`` (training), the answer and the tokenizer's end-of-sequence token are appended after
    the prompt and ``labels`` are returned (see the module docstring), so the loss teaches exactly what
    generation will produce after this prompt.

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
    call_kwargs: dict[str, object] = {"text": full, "return_tensors": "pt", "padding": True, "padding_side": padding_side}
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


def conversation_inputs(
    processor: ProcessorMixin,
    conversations: Sequence[list[Message]],
    images: Sequence[Sequence[Image]],
    *,
    answer: Sequence[str] | None = None,
    padding_side: Literal["left", "right"] = "left",
) -> BatchFeature:
    """Model inputs for whole conversations in the chat-template form (system turn, text and image parts where
    the messages put them: :func:`slc.agent.local_chat.messages_to_chat`), one list of images per
    conversation; with ``answer``, the reply + end-of-sequence are appended and labelled as in
    :func:`chat_inputs`. For training a model on the very prompts it is later served."""
    if len(images) != len(conversations) or (answer is not None and len(answer) != len(conversations)):
        raise ValueError("pass one list of images (and one answer) per conversation")
    tokenizer = processor.tokenizer
    prompts = [processor.apply_chat_template(list(c), add_generation_prompt=True, tokenize=False) for c in conversations]
    answers = list(answer) if answer is not None else None
    full = prompts if answers is None else [p + a + (tokenizer.eos_token or "") for p, a in zip(prompts, answers)]
    per_sample = [list(i) for i in images]
    call_kwargs: dict[str, object] = {"text": full, "return_tensors": "pt", "padding": True, "padding_side": padding_side}
    if any(per_sample):
        call_kwargs["images"] = per_sample
    inputs = processor(**call_kwargs)
    if answers is not None:
        inputs["labels"] = _answer_labels(processor, inputs, answers, per_sample, prompts, call_kwargs)
    return inputs


def _as_image_list(images: ImagesArg) -> list[Image]:
    if images is None:
        return []
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]


def _answer_labels(
    processor: ProcessorMixin,
    inputs: BatchFeature,
    answers: list[str],
    per_sample: list[list[Image]],
    prompts: list[str],
    call_kwargs: dict[str, object],
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


def _label_history(processor: ProcessorMixin, inputs: BatchFeature, histories: list[list[Turn]]) -> None:
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


def _move(inputs: BatchFeature, device: torch.device | str | None, dtype: torch.dtype | None) -> BatchFeature:
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


__all__ = ["IGNORE_INDEX", "chat_inputs", "chat_messages", "chat_prompt", "conversation_inputs"]

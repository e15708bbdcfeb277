"""The three things anyone does with a loaded small VLM: generate text, read the next-token logits, and
score a given answer's log-probability. Written once for the runtime, the recognition protocols, the
training evaluator, the evals and the in-process chat model.

Each takes model inputs built by :func:`slc.agent.chat_inputs.chat_inputs` and runs without gradients;
:func:`label_logprobs` is the differentiable core that the likelihood readout and the training loss share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slc.agent.chat_inputs import IGNORE_INDEX

if TYPE_CHECKING:
    import torch
    from transformers import BatchFeature, PreTrainedModel, ProcessorMixin


def generate_text(
    model: PreTrainedModel, processor: ProcessorMixin, inputs: BatchFeature, *, max_new_tokens: int, **generate_kwargs: object
) -> list[str]:
    """Greedy generation, decoded: the new text of each row (special tokens dropped, not stripped).

    ``generate_kwargs`` go to ``model.generate`` (e.g. ``logits_processor``). Padding uses the tokenizer's
    pad token, else its end-of-sequence token (a checkpoint without a pad token still batches).
    """
    import torch

    tok = processor.tokenizer
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            **generate_kwargs,
        )
    return tok.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def last_position_logits(model: PreTrainedModel, inputs: BatchFeature) -> torch.Tensor:
    """Next-token logits at each row's last position, (batch, vocab): one forward pass.

    With left padding the last position is every row's answer position. ``logits_to_keep=1`` spares the
    vocabulary projection of every other position; a model without that argument computes them all.
    """
    import torch

    with torch.inference_mode():
        try:
            return model(**inputs, logits_to_keep=1).logits[:, -1, :]
        except TypeError:
            return model(**inputs).logits[:, -1, :]


def label_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row, the sum of the labelled tokens' log-probabilities (teacher-forced next-token prediction).

    ``labels`` as :func:`~slc.agent.chat_inputs.chat_inputs` makes them (-100 = not labelled). Keeps the
    graph: the training loss of the likelihood protocol is built on it.
    """
    import torch

    logp = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
    target = labels[:, 1:]
    token = logp.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return (token * (target != IGNORE_INDEX)).sum(-1)


def sequence_logprobs(model: PreTrainedModel, inputs: BatchFeature, labels: torch.Tensor) -> list[float]:
    """log P(labelled answer | prompt) per row, in one forward pass (``inputs`` without the labels)."""
    import torch

    with torch.inference_mode():
        return label_logprobs(model(**inputs).logits, labels).tolist()


__all__ = ["generate_text", "label_logprobs", "last_position_logits", "sequence_logprobs"]

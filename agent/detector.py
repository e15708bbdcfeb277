"""How the small-VLM detector behaves: one config object, as peft's LoraConfig is for an adapter.

Why one object: the runtime (:class:`slc.agent.small_vlm.SmallVLM`), the settings (``[small]`` in slc.toml,
``SLC_SMALL__*``: :class:`slc.agent.settings.SmallVLMSettings` is this config plus where the model lives)
and callers that want one behaviour changed (``locate="never"``) all speak the same validated fields,
instead of keyword arguments copied one by one and checked by hand.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The recognition protocols (classes in :mod:`slc.agent.recognition`; a bank's manifest names one).
RecognitionName = Literal["yes_no", "describe", "likelihood", "reference"]
CombineMode = Literal["per_concept", "merge"]
LocateMode = Literal["auto", "always", "never"]


class DetectorConfig(BaseModel):
    """The detector's behaviour; every field has the default the runtime always had."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recognition: RecognitionName | None = Field(default=None, description=(
        "How a concept is recognized: 'yes_no' (the concept question, Yes/No probabilities), 'describe' (the "
        "model describes the image first, then answers), 'likelihood' (P(the concept's identity text | image) "
        "against a threshold), 'reference' (the concept's reference photos against the photo, through the "
        "bank's learned reference head: tells look-alikes apart). Unset = what the adapter bank's manifest says its adapters were trained for, "
        "else yes_no."))
    likelihood_threshold: float | None = Field(default=None, gt=0, lt=1, description=(
        "'likelihood' only: the probability above which a concept is present. Unset = the bank's calibrated "
        "threshold, else 0.5."))
    combine: CombineMode = Field(default="per_concept", description=(
        "How several concepts' routed adapters combine: each concept scored under its own adapter "
        "(per_concept, measured better: see slc.agent.small_vlm) or one averaged LoRA (merge, SLC's way)."))
    locate: LocateMode = Field(default="auto", description=(
        "When the JSON (locations, evidence) is generated: for pairs the probabilities do not call absent "
        "(auto), always, or never."))
    max_new_tokens: int = Field(default=128, ge=1, description="Token limit of the generated JSON.")
    batch_size: int = Field(default=16, ge=1, description="(image, concept) pairs per forward pass.")
    min_yes_no_mass: float = Field(default=0.5, ge=0.0, le=1.0, description=(
        "P(Yes)+P(No) at the answer position needed to take the status from the Yes/No probabilities; below "
        "it the model is not answering Yes/No and the JSON decides."))
    max_attempts: int = Field(default=2, ge=1, le=5, description="JSON generation attempts (retries use a stricter prompt).")
    max_merged: int = Field(default=8, ge=1, description="Merged adapters (combine='merge') kept cached.")
    max_description_tokens: int = Field(default=24, ge=1, description="'describe' only: token limit of the description.")
    generation_kwargs: dict[str, object] = Field(default_factory=dict, description=(
        "Extra keyword arguments for generate() (e.g. a logits_processor)."))


__all__ = ["CombineMode", "DetectorConfig", "LocateMode", "RecognitionName"]

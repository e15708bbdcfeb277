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
        "When a concept is located: for pairs the probabilities do not call absent (auto), always, or never. "
        "Most protocols locate by generating the detection JSON (locations, evidence). 'reference' with "
        "reference_locate locates with its head instead, no generation: auto = for concepts judged present, "
        "always = for every scored pair (its candidate regions and their scores in evidence even when absent; "
        "a location is only ever kept for 'present'), never = no location and no extra pass."))
    reference_locate: bool = Field(default=True, description=(
        "'reference' only: where a concept is comes from the reference head (an occlusion map of the photo, its "
        "candidate regions scored kept alone and blanked; the region's 3x3 cell is location-absolute, the "
        "region scores go to evidence; no generation, two vision passes per photo). False = generate the "
        "detection JSON as the other protocols do (a bank whose language path was never taught it writes "
        "garbage there)."))
    locate_grid: int = Field(default=6, ge=2, le=16, description=(
        "'reference' locating: tiles per side of the occlusion map (grid x grid photos blanked one tile each, "
        "in one vision pass per photo). 6 measured on validation concepts (benchmarks/localization.py)."))
    locate_peak: float = Field(default=0.1, ge=0.0, le=1.0, description=(
        "'reference' locating: a tile whose blanking moves the head's embedding at least this share of the "
        "photo's largest move, and no less than its neighbours', is the peak of a candidate region."))
    locate_radius: int = Field(default=1, ge=0, le=4, description=(
        "'reference' locating: a candidate region is its peak tile and the tiles within this many tiles of it."))
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

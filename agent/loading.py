"""The one place that loads image-text-to-text models and their processors, for users and for us.

Why one place: the runtime, training, evals and the CLI must agree on device/dtype defaults, on how a
missing torchvision is handled (transformers 5 processors with a video part need it) and on what a
person sees when a model id cannot be found offline (:func:`check_checkpoint` says it before anything
loads).
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from slc.agent.errors import DeviceUnavailableError, ModelNotFoundError, UnsupportedModelError

if TYPE_CHECKING:  # keep `import slc.agent.loading` cheap; torch/transformers load on first use
    import torch
    from transformers import PreTrainedModel, ProcessorMixin

logger = logging.getLogger(__name__)

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16", "half": "float16"}  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# Device and dtype
# ----------------------------------------------------------------------------------------------------------


def resolve_device_dtype(
    device: str | torch.device | None = "auto", dtype: str | torch.dtype | None = "auto"
) -> tuple[torch.device, torch.dtype]:
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


def check_checkpoint(path_or_id: str | os.PathLike[str]) -> str:
    """A loadable reference (see :func:`resolve_checkpoint`), or ModelNotFoundError now.

    Why: a service should fail when it is built, not after recall or mid-session. A local folder must be
    a checkpoint; a hub id must be in the local cache or fetchable (no weights are downloaded here).
    """
    resolved = resolve_checkpoint(path_or_id)
    if not Path(resolved).is_dir() and _hub_file(resolved, "config.json") is None:
        raise _not_found(os.fspath(path_or_id), "")
    return resolved


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


def load_processor(path_or_id: str | os.PathLike[str], **kwargs: object) -> ProcessorMixin:
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
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    **model_kwargs: object,
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


__all__ = ["check_checkpoint", "load_processor", "load_vlm", "resolve_checkpoint", "resolve_device_dtype",
           "torchvision_available"]

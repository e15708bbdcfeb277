"""Image-only ("video-less") processors for machines without torchvision.

Why: in transformers 5 the Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision and SmolVLM processors carry a video
processor, and every video processor needs torchvision. With the CPU torch this project installs there is
no torchvision, so the standard processors neither build nor load -- even with ``video_processor=None``.
slc only ever sends still images, so these thin subclasses drop the video part and keep everything else
(image processor, tokenizer, chat template, image-token expansion) exactly as the standard class does.

Their ``from_pretrained`` loads standard checkpoints (hub ones and our own tiny ones), because the
sub-processors are looked up by the attribute names in ``__init__`` and ``video_processor`` is not among
them. :func:`slc.agent.loading.load_processor` uses them only when torchvision is missing; folders we save
with them are rewritten to name the standard class (see :func:`standard_processor_class_name`), so they
load anywhere with plain ``AutoProcessor``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from transformers import (
    LlavaOnevisionProcessor,
    Qwen2_5_VLProcessor,
    Qwen2VLProcessor,
    SmolVLMProcessor,
)


class VideolessQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2-VL processor without the video processor (images and text only)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs: Any) -> None:
        # The base passes (image, tokenizer, None) on; ProcessorMixin keeps only our two attributes.
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class VideolessQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor without the video processor (images and text only)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs: Any) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class VideolessLlavaOnevisionProcessor(LlavaOnevisionProcessor):
    """LLaVA-OneVision processor without the video processor (images and text only)."""

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        num_image_tokens=None,
        vision_feature_select_strategy=None,
        chat_template=None,
        image_token="<image>",
        video_token="<video>",
        vision_aspect_ratio="anyres_max_9",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            image_processor,
            tokenizer,
            None,
            num_image_tokens=num_image_tokens,
            vision_feature_select_strategy=vision_feature_select_strategy,
            chat_template=chat_template,
            image_token=image_token,
            video_token=video_token,
            vision_aspect_ratio=vision_aspect_ratio,
            **kwargs,
        )


class VideolessSmolVLMProcessor(SmolVLMProcessor):
    """SmolVLM processor without the video processor.

    SmolVLM's ``apply_chat_template`` reads ``num_frames``/``fps`` from the video processor even for
    image-only chats, so a read-only stub with the standard defaults stands in for it. It is not a
    processor attribute, so it is never saved.
    """

    def __init__(self, image_processor, tokenizer, image_seq_len: int = 169, chat_template=None, **kwargs: Any) -> None:
        super().__init__(image_processor, tokenizer, None, image_seq_len=image_seq_len, chat_template=chat_template, **kwargs)
        self.video_processor = SimpleNamespace(num_frames=64, fps=1)


# standard processor class name -> its video-less stand-in
VIDEOLESS_PROCESSORS: dict[str, type] = {
    "Qwen2VLProcessor": VideolessQwen2VLProcessor,
    "Qwen2_5_VLProcessor": VideolessQwen2_5_VLProcessor,
    "LlavaOnevisionProcessor": VideolessLlavaOnevisionProcessor,
    "SmolVLMProcessor": VideolessSmolVLMProcessor,
}


def standard_processor_class_name(processor: Any) -> str:
    """The transformers class a (possibly video-less) processor stands for, e.g. ``Qwen2_5_VLProcessor``."""
    for standard, videoless in VIDEOLESS_PROCESSORS.items():
        if isinstance(processor, videoless):
            return standard
    return type(processor).__name__


def is_videoless(processor: Any) -> bool:
    """True when ``processor`` is one of our image-only stand-ins."""
    return isinstance(processor, tuple(VIDEOLESS_PROCESSORS.values()))

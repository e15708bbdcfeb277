"""An in-process LangChain chat model over a local transformers VLM (``slc demo --in-process``).

Why: the large role normally sits behind an OpenAI-compatible server (``transformers serve``, vLLM...);
on a machine where starting a server is not wanted, the same checkpoint can answer in-process. It
accepts the same messages the graph sends to any chat model (system/human/ai, ``image_url`` data-URL
parts) and renders them with the checkpoint's own chat template.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from PIL.Image import Image
from pydantic import ConfigDict, PrivateAttr

from slc.agent.images import load_image
from slc.agent.inference import generate_text
from slc.agent.loading import load_vlm


def _decode_data_url(url: str) -> Image:
    if not url.startswith("data:"):
        raise ValueError("only data: image URLs are supported in-process")
    return load_image(base64.b64decode(url.split(",", 1)[1]))


class LocalChatVLM(BaseChatModel):
    """Greedy generation with a local image-text-to-text checkpoint, as a LangChain chat model."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str
    max_new_tokens: int = 128
    _model: Any = PrivateAttr(default=None)
    _processor: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "slc-local-vlm"

    def _load(self) -> None:
        if self._model is None:
            self._model, self._processor = load_vlm(self.model_path, device="cpu", dtype="float32")

    def _convert(self, messages: list[BaseMessage]) -> tuple[list[dict[str, object]], list[Image]]:
        chat: list[dict[str, object]] = []
        images: list[Image] = []
        for m in messages:
            role = "system" if isinstance(m, SystemMessage) else "user" if isinstance(m, HumanMessage) else "assistant"
            parts: list[dict[str, Any]] = []
            content = m.content if isinstance(m.content, list) else [{"type": "text", "text": str(m.content)}]
            for p in content:
                if isinstance(p, str):
                    parts.append({"type": "text", "text": p})
                elif p.get("type") == "image_url":
                    url = p["image_url"]["url"] if isinstance(p["image_url"], dict) else p["image_url"]
                    images.append(_decode_data_url(url))
                    parts.append({"type": "image"})
                elif p.get("type") == "text":
                    parts.append({"type": "text", "text": p.get("text", "")})
            chat.append({"role": role, "content": parts})
        return chat, images

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> ChatResult:
        with self._lock:
            self._load()
            chat, images = self._convert(messages)
            prompt = self._processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            inputs = self._processor(text=[prompt], images=[images] if images else None, return_tensors="pt")
            (text,) = generate_text(self._model, self._processor, inputs, max_new_tokens=self.max_new_tokens)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text.strip()))])


__all__ = ["LocalChatVLM"]

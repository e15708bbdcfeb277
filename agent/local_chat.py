"""An in-process LangChain chat model over a local transformers VLM: the large role with no server.

Why: the large role normally sits behind an OpenAI-compatible server (``transformers serve``, vLLM...);
where starting a server is not wanted (``slc demo --in-process``, ``SLC_LARGE__MODEL=local:<checkpoint>``
for ``slc ask``/``slc chat`` offline), the same checkpoint answers in this process. It is a complete chat
model by langchain's standard tests (tests/ecosystem/test_standard_tests.py): invoke, stream (token by
token, the last chunk marked), batch, async, stop sequences, usage metadata, and images in every shape a
LangChain message carries them (OpenAI ``image_url`` parts, v1 ``image`` blocks with base64 or a data URL),
rendered with the checkpoint's own chat template. Generation is greedy: ``temperature`` is not a knob here.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from PIL.Image import Image
from pydantic import ConfigDict, Field, PrivateAttr

from slc.agent.errors import InvalidImageError
from slc.agent.images import load_image
from slc.agent.inference import generate_text
from slc.agent.loading import load_vlm


def _block_image(block: dict[str, Any]) -> Image:
    """The picture of a v1 ``image`` block (inline only: an in-process model fetches nothing)."""
    payload = block.get("base64")
    url = block.get("url") or ""
    if not payload and url.startswith("data:"):
        payload = url.split(",", 1)[1]
    if not payload:
        raise InvalidImageError("Invalid image: the in-process model reads inline images only (base64 or a data URL)")
    return load_image(base64.b64decode(payload))


def _cut(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """``text`` up to the first stop sequence, and whether one was found."""
    ends = [i for i in (text.find(s) for s in stop or []) if i >= 0]
    return (text[: min(ends)], True) if ends else (text, False)


def messages_to_chat(messages: list[BaseMessage]) -> tuple[list[dict[str, object]], list[Image]]:
    """LangChain messages -> (the chat-template conversation, its images in order), text and image parts kept
    where the messages put them. One place, because the large role is TRAINED on exactly what it is later
    served (:mod:`slc.training.large_role`)."""
    chat: list[dict[str, object]] = []
    images: list[Image] = []
    for m in messages:
        role = "system" if isinstance(m, SystemMessage) else "user" if isinstance(m, HumanMessage) else "assistant"
        parts: list[dict[str, Any]] = []
        for block in m.content_blocks:  # langchain-core's reading of every content shape
            if block["type"] == "text":
                parts.append({"type": "text", "text": block.get("text", "")})
            elif block["type"] == "image":
                images.append(_block_image(block))  # type: ignore[arg-type]
                parts.append({"type": "image"})
        chat.append({"role": role, "content": parts})
    return chat, images


class LocalChatVLM(BaseChatModel):
    """Greedy generation with a local image-text-to-text checkpoint, as a LangChain chat model."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    model_path: str = Field(alias="model", description="Folder (or HF id) of an image-text-to-text checkpoint.")
    max_tokens: int = Field(default=128, ge=1, description="Cap on generated tokens per call.")
    stop: list[str] | None = Field(default=None, description="Generation ends at the first of these strings.")
    streaming: bool = Field(default=False, description="Stream by default (invoke then aggregates the chunks).")
    _model: Any = PrivateAttr(default=None)
    _processor: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "slc-local-vlm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model_path, "max_tokens": self.max_tokens}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="slc_local", ls_model_name=kwargs.get("model", self.model_path),
                                 ls_model_type="chat", ls_max_tokens=kwargs.get("max_tokens", self.max_tokens))
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def _load(self) -> None:
        if self._model is None:
            self._model, self._processor = load_vlm(self.model_path, device="cpu", dtype="float32")

    def _convert(self, messages: list[BaseMessage]) -> tuple[list[dict[str, object]], list[Image]]:
        return messages_to_chat(messages)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        from transformers import TextIteratorStreamer

        stop = stop or self.stop
        max_tokens = int(kwargs.get("max_tokens", self.max_tokens))
        with self._lock:  # one generation at a time: the model is not re-entrant
            self._load()
            chat, images = self._convert(messages)
            proc, tok = self._processor, self._processor.tokenizer
            prompt = proc.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            inputs = proc(text=[prompt], images=[images] if images else None, return_tensors="pt")
            streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
            produced: list[str] = []
            failed: list[BaseException] = []

            def generate() -> None:
                try:
                    produced.extend(generate_text(self._model, proc, inputs, max_new_tokens=max_tokens, streamer=streamer,
                                                  **({"stop_strings": stop, "tokenizer": tok} if stop else {})))
                except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread below
                    failed.append(exc)
                    streamer.end()  # or the reading loop would wait forever

            worker = threading.Thread(target=generate, daemon=True)
            worker.start()
            raw = sent = ""
            drained = False
            try:
                for piece in streamer:
                    raw, stopped = _cut(raw + piece, stop)
                    clean = raw.lstrip()
                    if len(clean) > len(sent):
                        chunk = ChatGenerationChunk(message=AIMessageChunk(content=clean[len(sent):]))
                        sent = clean
                        if run_manager:
                            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                        yield chunk
                    if stopped:
                        break
                else:
                    drained = True
            finally:  # also when the caller stops reading: the next call must not start beside this generation
                if not drained:
                    for _ in streamer:  # the streamer ends once, when generation does
                        pass
                worker.join()
            if failed:
                raise failed[0]
        n_in = int(inputs["input_ids"].shape[1])
        n_out = len(tok(produced[0], add_special_tokens=False)["input_ids"]) if produced else 0  # the reply's tokens
        usage = UsageMetadata(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out)
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata=usage, chunk_position="last",
            response_metadata={"model_name": self.model_path, "finish_reason": "stop"}))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        full: AIMessageChunk | None = None
        for chunk in self._stream(messages, stop, run_manager, **kwargs):
            full = chunk.message if full is None else full + chunk.message  # type: ignore[assignment]
        assert full is not None
        message = AIMessage(content=str(full.content).strip(), usage_metadata=full.usage_metadata,
                            response_metadata=full.response_metadata)
        return ChatResult(generations=[ChatGeneration(message=message)])


__all__ = ["LocalChatVLM", "messages_to_chat"]

"""Photos inside chat messages: what LangGraph Studio's chat, Agent Chat UI and any LangChain client send.

Why: a chat front-end sends a turn as a HumanMessage whose content holds text plus image blocks, never as
the graph's own ``image`` field. :class:`~slc.graphs.guard.GuardedGraph` hands such messages to
:func:`admit_message_photos` before the first node: each photo is taken in exactly like the ``image``
input (:func:`slc.graphs.photos.admit_photo`: size-bounded, validated, stored by hash in the run's tenant)
and the message becomes its text, with the photo's sha256 in ``additional_kwargs["image"]`` (the form the
graph records its own turns in). So the photo of the last human message is the turn's photo, and no state,
checkpoint, trace or large-VLM history ever holds the image itself.

The blocks accepted are every shape a LangChain message may carry an image in, read through
langchain-core's own normaliser (``BaseMessage.content_blocks``):

- LangChain v1 standard blocks: ``{"type": "image", "base64": ..., "mime_type": ...}``,
  ``{"type": "image", "url": "data:image/...;base64,..."}``;
- LangChain v0 blocks: ``{"type": "image", "source_type": "base64", "data": ..., "mime_type": ...}``;
- Agent Chat UI's: ``{"type": "image", "mimeType": ..., "data": ...}``;
- OpenAI Chat Completions: ``{"type": "image_url", "image_url": {"url": "data:..."}}`` (or the URL as a
  string); Anthropic's ``{"type": "image", "source": {"type": "base64", ...}}``.

Refused with a message a person or a model can act on, never echoing the payload: an image given by a
remote URL (the server fetches nothing on a client's behalf) or by a provider's file id, a file that is not
an image, and two photos in one message (a turn is about one photo).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, convert_to_messages

from slc.agent.errors import InvalidImageError

#: Block types that carry an image in some client's dialect (after langchain-core's normalisation, what it
#: leaves as "non_standard").
_LEGACY_IMAGE_TYPES = ("image_url", "input_image")


def _data_url(mime: str | None, payload: str) -> str:
    mime = mime if mime and mime.startswith("image/") else "image/png"  # load_image reads the bytes' own type
    return f"data:{mime};base64,{payload}"


def _photo_of(block: dict[str, Any]) -> str | None:
    """The photo a normalised content block carries, as a data URL (None: the block is not an image)."""
    kind = block.get("type")
    if kind == "non_standard":
        value = block.get("value") or {}
        if not isinstance(value, dict) or value.get("type") not in _LEGACY_IMAGE_TYPES:
            return None
        url = value.get("image_url")
        url = url.get("url") if isinstance(url, dict) else url
        block = {"type": "image", "url": url}
    elif kind == "file":
        mime = block.get("mime_type") or block.get("mimeType") or ""
        if not str(mime).startswith("image/"):
            raise InvalidImageError(
                f"Invalid image: the message carries a file of type {mime or 'unknown'}; only photos are read")
    elif kind != "image":
        return None
    payload = block.get("base64") or block.get("data")
    if isinstance(payload, str) and payload:
        return _data_url(block.get("mime_type") or block.get("mimeType"), payload)
    url = block.get("url")
    if isinstance(url, str) and url.startswith("data:"):
        return url
    if isinstance(url, str) and url:
        raise InvalidImageError(
            "Invalid image <URL>: photos given by URL are not fetched (the server reaches no other host for a "
            "client): send the photo itself, as base64 or a data:image/...;base64 URL")
    raise InvalidImageError(
        "Invalid image: the message names a photo without its content (a file id?): send the photo itself, as "
        "base64 or a data:image/...;base64 URL")


def _text(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(b["text"] for b in blocks if b.get("type") == "text" and b.get("text"))


def _admit(message: HumanMessage, admit: Callable[[str], str]) -> tuple[HumanMessage, str | None]:
    """The message with its photo stored and named by sha256 (as it was when it holds no photo)."""
    if not isinstance(message.content, list):
        return message, None
    blocks = message.content_blocks
    photos = [url for url in map(_photo_of, blocks) if url is not None]
    if not photos:
        return message, None
    if len(photos) > 1:
        raise InvalidImageError(
            f"Invalid image: one message carries {len(photos)} photos; a question is about one photo: send each "
            "in its own message")
    sha = admit(photos[0])
    kept = message.model_copy(update={"content": _text(blocks),
                                      "additional_kwargs": {**message.additional_kwargs, "image": sha}})
    return kept, sha


def human_texts(messages: BaseMessage | dict[str, Any] | Sequence[Any]) -> list[str]:
    """The text of every human message of ``messages`` (a run's input, in any form ``add_messages`` takes),
    image blocks left out: what the turn's question may be (the guard bounds each one's length)."""
    items = [messages] if isinstance(messages, (BaseMessage, dict, str)) else list(messages)
    return [m.content if isinstance(m.content, str) else _text(m.content_blocks)
            for m in convert_to_messages(items) if isinstance(m, HumanMessage)]


def admit_message_photos(
    messages: BaseMessage | dict[str, Any] | Sequence[Any], admit: Callable[[str], str]
) -> tuple[list[BaseMessage], str | None]:
    """``messages`` (a run's input, in any form ``add_messages`` takes) with every human message's photo
    stored by ``admit`` (a data URL -> its sha256) and replaced by that sha256, and the sha256 of the LAST
    human message's photo (None when it holds none: the turn's photo, if any, is then the ``image`` input)."""
    items = [messages] if isinstance(messages, (BaseMessage, dict, str)) else list(messages)
    out: list[BaseMessage] = []
    turn_photo: str | None = None
    for message in convert_to_messages(items):
        if isinstance(message, HumanMessage):
            message, turn_photo = _admit(message, admit)
        out.append(message)
    return out, turn_photo


__all__ = ["admit_message_photos", "human_texts"]

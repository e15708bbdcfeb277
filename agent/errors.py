"""Every error slc raises on purpose, in one place.

Why: a person (or a host agent) must be able to act on an error, so each one says what went wrong and
what to do, and callers can catch the whole family with ``SLCError``.
"""

from __future__ import annotations

from collections.abc import Sequence


class SLCError(Exception):
    """Base class of slc-agent's own errors."""


class InvalidImageError(SLCError, ValueError):
    """An image that cannot be used: corrupt, empty, not an image, too large, unsupported mode."""


class InvalidConceptNameError(SLCError, ValueError):
    """A concept name that is empty, too long or has characters we cannot match in text."""


class InvalidTenantError(SLCError, ValueError):
    """A tenant that is blank, too long or not a string; the message names the setting and the flag."""


class QuestionTooLongError(SLCError, ValueError):
    """A question (or a chat message's text) longer than ``settings.max_question_chars``; the message names the
    limit and the setting that raises it. Raised before anything of the turn is stored."""

    def __init__(self, length: int, limit: int) -> None:
        self.length, self.limit = length, limit
        super().__init__(
            f"Question too long: {length:,} characters, the limit is {limit:,} (max_question_chars, "
            "SLC_MAX_QUESTION_CHARS): ask a shorter question.")


def check_question(text: object, limit: int) -> None:
    """Raise :class:`QuestionTooLongError` when ``text`` (a question; anything not a string passes) is longer
    than ``limit`` characters. The one check every entry point of a question uses."""
    if isinstance(text, str) and len(text) > limit:
        raise QuestionTooLongError(len(text), limit)


class DuplicateConceptError(SLCError, ValueError):
    """A concept with this name already exists for this tenant."""


class UnknownConceptError(SLCError, KeyError):
    """No concept of that name for this tenant; ``suggestions`` holds close names."""

    def __init__(self, name: str, suggestions: Sequence[str] = ()) -> None:
        self.name = name
        self.suggestions = list(suggestions)
        hint = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"Unknown concept {name!r}.{hint}")

    def __str__(self) -> str:  # KeyError would otherwise print the repr of the message
        return self.args[0]


class MemoryUnavailableError(SLCError, RuntimeError):
    """The concept memory (Chroma) cannot be reached or opened."""


class ModelNotFoundError(SLCError, FileNotFoundError):
    """A model id/path that is neither a local folder nor reachable on the hub."""


class UnsupportedModelError(SLCError, ValueError):
    """A checkpoint that loads but cannot serve as the small VLM (not image-text-to-text, no Yes/No tokens)."""


class DeviceUnavailableError(SLCError, RuntimeError):
    """A requested device (cuda, mps) or dtype that this machine cannot provide."""


class ModelOutputError(SLCError, ValueError):
    """A model's output could not be parsed into the expected structure, even after retries."""

    def __init__(self, message: str, raw: str | None = None) -> None:
        self.raw = raw
        super().__init__(message)


class LargeVLMUnavailableError(SLCError, RuntimeError):
    """The large VLM did not answer (timeout, connection refused, 5xx after retries, the call's deadline).
    A transient fault: a turn degrades (the small VLM's unverified report, said plainly) instead of failing."""


class LargeVLMReplyError(LargeVLMUnavailableError):
    """The large VLM answered, but not with a usable reply: a body that is not a chat completion (truncated
    JSON, an HTML page, no ``message``), an empty or garbage answer, or a request it refused for this input.
    Treated like unavailability: the turn degrades, with a flag saying what came back."""


class LargeVLMConfigError(SLCError, RuntimeError):
    """The large VLM cannot work as configured (no model set, credentials refused, unknown model, wrong URL):
    retrying will not help. The message names the setting that fixes it and carries the server's own reason.
    A turn raises it (the CLI prints one line; a chat goes on to the next question)."""


class MissingAPIKeyError(LargeVLMConfigError):
    """A provider needs an API key that is not set; the message names the variable."""


class AdapterBankError(SLCError, ValueError):
    """An adapter bank folder or manifest that cannot be used (missing files, bad centroids, unknown adapter)."""


class ConceptTreeError(SLCError, ValueError):
    """A concept tree that cannot be edited or rendered as asked: an unknown dimension or value, or too few
    editable identity dimensions for the requested number of changes (the message says which)."""

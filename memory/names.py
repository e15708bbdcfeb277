"""Concept names and tenant keys: the one place that says what a name is and when text mentions it.

Why one place: the memory, the personalization tool and the CLI all accept names the way people write
them (``<Bo>``, `` bo ``); if each stripped brackets its own way, a name the tool accepts could be one the
memory cannot store or find.
"""

from __future__ import annotations

import hashlib
import re

from slc.agent.errors import InvalidConceptNameError, InvalidTenantError

MAX_NAME_LEN = 64
_NAME_RE = re.compile(r"^[^\W_][\w\-]*$", re.UNICODE)
_WORD_RE = re.compile(r"[\w\-]+", re.UNICODE)


def normalize_name(name: str) -> str:
    """``"<Bo>"`` / ``" bo "`` -> ``"Bo"``; raises InvalidConceptNameError for names text matching can't find.

    A name is a single word: letters/digits (any script), ``_`` and ``-`` inside, at most 64 chars,
    starting with a letter or digit. Case is kept for display; uniqueness and matching ignore case.
    """
    if not isinstance(name, str):
        raise InvalidConceptNameError(f"Concept name must be a string, got {type(name).__name__}")
    raw = name.strip()
    if raw.startswith("<") and raw.endswith(">"):
        raw = raw[1:-1].strip()
    if not raw:
        raise InvalidConceptNameError(f"Concept name {name!r} is empty")
    if len(raw) > MAX_NAME_LEN:
        raise InvalidConceptNameError(f"Concept name {raw[:20]!r}... is {len(raw)} characters; the limit is {MAX_NAME_LEN}")
    if not _NAME_RE.match(raw) or raw.endswith("-"):
        raise InvalidConceptNameError(
            f"Concept name {name!r} is not valid: use one word of letters, digits, '_' or '-' "
            "(no spaces or brackets inside), e.g. 'bo' or 'my-mug'"
        )
    return raw


def mention_candidates(text: str) -> set[str]:
    """The lower-cased words of ``text`` that could be concept names (``shiba-gray`` also gives its parts),
    so a store can look them up with one membership filter before :func:`mentions` confirms each."""
    words: set[str] = set()
    for w in _WORD_RE.findall(text.lower()):
        w = w.strip("-")
        if w:
            words.add(w)
            words.update(p for p in w.split("-") if p)
    return words


def mentions(text: str, name: str) -> bool:
    """Whether ``text`` mentions ``name`` as a whole word, any case: "bo's", "(bo)" and "<BO>" do;
    "bottle" and "bo_x" do not."""
    return re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text, re.IGNORECASE) is not None


def slug(text: str, limit: int) -> str:
    """Lower-case letters, digits and ``-`` only, at most ``limit`` chars (``"x"`` when nothing is left)."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return s or "x"


#: Longest tenant accepted (an id, an e-mail address, a URL of an organization).
MAX_TENANT_LEN = 1024


def tenant_key(tenant: str) -> str:
    """A filesystem- and index-safe, collision-free key for an arbitrary tenant string.

    The slug keeps names readable; the sha256 suffix keeps "Alice" and "alice" (or any two strings with
    the same slug) apart."""
    if not isinstance(tenant, str) or not tenant.strip() or len(tenant) > MAX_TENANT_LEN:
        raise InvalidTenantError(
            f"Invalid tenant {tenant!r:.60}: a tenant is a non-blank name of at most {MAX_TENANT_LEN} characters "
            "(--tenant, SLC_TENANT).")
    return f"{slug(tenant, 40)}-{hashlib.sha256(tenant.encode('utf-8')).hexdigest()[:12]}"


__all__ = ["MAX_NAME_LEN", "MAX_TENANT_LEN", "mention_candidates", "mentions", "normalize_name", "slug", "tenant_key"]

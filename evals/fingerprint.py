"""What produced a result row: a mode's configuration, and its fingerprint (a hash of it).

Why: resuming by (mode name, item id) alone kept a run's old answers when the model behind the name changed
(another ``SLC_LARGE__MODEL``, prompt, adapter bank or number of reflection rounds) and reported the stale
score. Every predictor describes what changes its answers (:meth:`describe`): the models (ids, parameters,
endpoint), the prompt versions, the adapter bank (hash of its manifest), the recognition protocol and its
threshold, the concept memory's content, the graph's settings. Each result row carries the description
and its fingerprint; a rerun reuses only rows with the current fingerprint, and says what changed.
Settings that only change speed (batch size, concurrency, timeouts, retries) are left out on purpose.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr

from slc.agent import prompts

if TYPE_CHECKING:
    from slc.agent.adapters import AdapterBank
    from slc.agent.small_vlm import SmallVLM
    from slc.memory.store import ConceptMemory

Config = dict[str, Any]
_SECRET_WORDS = ("api_key", "secret", "password")
#: Detector fields that change how fast it runs, never what it answers.
_SPEED_ONLY = {"batch_size", "max_merged"}


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON (sorted where order carries no meaning); secrets masked."""
    if isinstance(value, SecretStr):
        return "**********"
    if isinstance(value, BaseModel):
        return json_safe(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {str(k): ("**********" if any(w in str(k).lower() for w in _SECRET_WORDS) else json_safe(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(json_safe(v) for v in value)
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def fingerprint(config: Config) -> str:
    """A short, stable hash of a configuration (12 hex digits of SHA-256 of its canonical JSON)."""
    text = json.dumps(json_safe(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def describe(predictor: Any) -> Config | None:
    """The predictor's own description of what changes its answers, or None when it gives none."""
    fn = getattr(predictor, "describe", None)
    return json_safe(fn()) if callable(fn) else None


def describe_chat_model(model: Any) -> Config:
    """A LangChain chat model as its answers depend on it: class, parameters (model name, temperature, max
    tokens ...: LangChain's ``_identifying_params``, the same the LLM cache keys on) and endpoint."""
    from slc.agent.large_vlm import endpoint_of

    params = getattr(model, "_identifying_params", None)
    return {"class": type(model).__name__, "params": json_safe(dict(params) if params else {}),
            "endpoint": endpoint_of(model)}


def bank_digest(bank: AdapterBank | None) -> str | None:
    """Hash of an adapter bank's manifest (adapters, centroids, protocol, threshold), or None without a bank."""
    if bank is None:
        return None
    from slc.agent.adapters import MANIFEST

    return hashlib.sha256((Path(bank.root) / MANIFEST).read_bytes()).hexdigest()[:12]


def _protocol_fields(protocol: Any) -> Config:
    """A protocol's settings; a learned module among them (the reference head) as a digest of its weights, so
    a retrained head changes the fingerprint and nothing unserializable reaches it."""
    modules = {k for k, v in protocol if hasattr(v, "state_dict")}
    out = json_safe(protocol.model_dump(mode="json", exclude=modules))
    for k in sorted(modules):
        h = hashlib.sha256()
        for name, tensor in sorted(getattr(protocol, k).state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().float().numpy().tobytes())
        out[k] = h.hexdigest()[:12]
    return out


def describe_small_vlm(vlm: SmallVLM) -> Config:
    """The small VLM as its answers depend on it: checkpoint, dtype, detector behaviour, the recognition
    protocol in force (with a bank's calibrated threshold), the bank, its prompt version, and the error
    injection it runs with, if any (:mod:`slc.evals.injection`)."""
    from slc.evals.injection import injection_of

    protocol = vlm.protocol
    out: Config = {
        "model": str(vlm.model_id),
        "dtype": str(vlm.dtype),
        "detector": json_safe(vlm.config.model_dump(mode="json", exclude=_SPEED_ONLY)),
        "recognition": {"protocol": protocol.name, **_protocol_fields(protocol)},
        "bank": bank_digest(vlm.bank),
        "prompt": prompts.SMALL_VLM_PROMPT_VERSION,
    }
    injection = injection_of(vlm)
    if injection is not None:  # its claims flipped at known rates (slc eval --inject-errors)
        out["injected_errors"] = injection.describe()
    return out


def memory_digest(memory: ConceptMemory | None) -> Config | None:
    """What the eval tenant's memory knows (names, descriptions, identities, trees, adapters, reference image
    hashes), as a count and a hash: answers change when the registered concepts do."""
    if memory is None:
        return None
    concepts = sorted(memory.list(), key=lambda c: c.name)
    content = [[c.name, c.description, json_safe(c.identity), json_safe(c.tree), c.adapter,
                sorted(i.sha256 for i in c.images)] for c in concepts]
    return {"tenant": memory.tenant, "concepts": len(concepts), "content": fingerprint({"c": content})}


def config_changes(old: Config | None, new: Config | None) -> list[str]:
    """``key.path: old -> new`` for every value that differs between two configurations."""
    def flat(c: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(c, dict):
            out: dict[str, Any] = {}
            for k, v in c.items():
                out.update(flat(v, f"{prefix}{k}."))
            return out or {prefix[:-1]: {}}
        return {prefix[:-1]: c}

    a, b = flat(old or {}), flat(new or {})
    missing = "<absent>"
    return [f"{k}: {a.get(k, missing)!r} -> {b.get(k, missing)!r}" for k in sorted(set(a) | set(b))
            if a.get(k, missing) != b.get(k, missing)]


__all__ = ["Config", "bank_digest", "config_changes", "describe", "describe_chat_model", "describe_small_vlm",
           "fingerprint", "json_safe", "memory_digest"]

"""The four nodes of the SLC graph: recall, personalize, reflect, reason (plain functions, one job each).

Why these boundaries: each node is one model (memory, small VLM, large VLM as verifier, large VLM as
answerer), so a trace reads as "what was recalled, what the small model claimed, what the large model
thought of it, what was answered", and a failure is attributable. Every claim of every round and every
verdict is kept in state; the final report is derived from them by :func:`finalize` (pure, tested alone).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage, SystemMessage
from langchain_core.runnables import RunnableLambda
from langgraph.runtime import Runtime

from slc.agent import prompts
from slc.agent.detection import ConceptQuery, Detection
from slc.agent.errors import LargeVLMUnavailableError
from slc.agent.large_vlm import call_large_vlm, image_part
from slc.graphs import prompting
from slc.graphs.context import Context
from slc.graphs.state import Answer, Candidate, FinalDetection, State, Verdict

log = logging.getLogger(__name__)

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def context_of(runtime: Runtime[Context] | None) -> Context:
    """The run's Context (a default one when the caller passed none; a dict from the API is coerced)."""
    ctx = getattr(runtime, "context", None)
    if ctx is None:
        return Context()
    if isinstance(ctx, dict):  # e.g. LangGraph Server passing JSON: keep the fields Context knows
        known = {f.name for f in dataclasses.fields(Context)}
        return Context(**{k: v for k, v in ctx.items() if k in known})
    return ctx


def _call_config(ctx: Context, name: str, concepts: list[str], round_: int, **extra: Any) -> dict[str, Any]:
    return {
        "run_name": name,
        "tags": ["slc", name.split(".")[0]],
        "metadata": {"tenant": ctx.tenant_name, "concepts": concepts, "round": round_, **extra},
    }


def question_of(state: State) -> str:
    if state.question.strip():
        return state.question.strip()
    for m in reversed(state.messages):
        if isinstance(m, HumanMessage):
            return prompting.content_text(m.content).strip()
    return ""


# Decoded query photos and their data URLs, by content hash: a turn needs the same photo in three
# nodes (and twice as a data URL); content addressing makes caching by hash always correct.
_IMAGES: OrderedDict[tuple[str, str], Any] = OrderedDict()
_URLS: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
_CACHE_SIZE = 16
_CACHE_LOCK = threading.Lock()


def _remember(cache: OrderedDict, key: Any, value: Any) -> Any:
    with _CACHE_LOCK:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return value


def _open_image(ctx: Context, ref: str | None) -> tuple[str | None, Any]:
    """(sha256, RGB image) for a stored digest or a path (which is stored first); (None, None) if no image."""
    if not ref:
        return None, None
    store = ctx.image_store()
    if not (_SHA_RE.match(ref) and store.exists(ref)):
        ref = store.put(Path(ref)).sha256  # raises InvalidImageError naming the file
    key = (str(store.root), ref)
    img = _IMAGES.get(key)
    return ref, img if img is not None else _remember(_IMAGES, key, store.open(ref))


def _image_part(sha: str, img: Any, max_side: int) -> dict[str, Any]:
    part = _URLS.get((sha, max_side)) or _remember(_URLS, (sha, max_side), image_part(img, max_side))
    return {"type": part["type"], "image_url": dict(part["image_url"])}


def _candidate(hit: Any) -> Candidate:
    c = hit.concept
    ident = c.identity
    return Candidate(
        name=c.name,
        description=c.description or "",
        category=ident.category if ident else None,
        attributes=dict(ident.attributes) if ident else {},
        adapter=c.adapter,
        reference_images=[img.path for img in c.images],
        tree=c.tree,
        matched_by=list(hit.matched_by),
        score=float(hit.score),
    )


# -- recall ----------------------------------------------------------------------------------------------


def recall(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Candidates = concepts named in the question + concepts close to the image (open set)."""
    ctx = context_of(runtime)
    question = question_of(state)
    sha, img = _open_image(ctx, state.image)
    hits = ctx.memory().recall(text=question or None, image=img)
    seen: dict[str, Candidate] = {}
    for h in hits:
        cand = _candidate(h)
        if cand.name in seen:  # merge the reasons a concept was recalled
            prev = seen[cand.name]
            prev.matched_by = sorted(set(prev.matched_by) | set(cand.matched_by))
            prev.score = max(prev.score, cand.score)
        else:
            seen[cand.name] = cand
    return {
        "question": question,
        "image": sha,
        "candidates": list(seen.values()),
        "detections": [],
        "verdicts": [],
        "final": [],
        "pending": [],
        "round": 0,
        "answer": None,
        "degraded": False,
        "flags": [],
        "large_vlm_calls": 0,
    }


# -- personalize -----------------------------------------------------------------------------------------


def personalize(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Small-VLM detection: all candidates on round 0; on a loop-back only the disputed ones, with their
    reference images in context and the verifier's feedback."""
    ctx = context_of(runtime)
    by_name = {c.name: c for c in state.candidates}
    second_pass = bool(state.pending)
    round_ = state.round + 1 if second_pass else 0
    names = list(state.pending) if second_pass else list(by_name)
    feedback = {v.concept: v.feedback for v in state.verdicts if v.round == state.round} if second_pass else {}
    queries = [
        ConceptQuery(
            name=n,
            description=by_name[n].description,
            category=by_name[n].category,
            attributes=by_name[n].attributes,
            adapter=by_name[n].adapter,
            reference_images=[Path(p) for p in by_name[n].reference_images] if second_pass else [],
            feedback=(feedback.get(n) or None) if second_pass else None,
        )
        for n in names
        if n in by_name
    ]
    _, img = _open_image(ctx, state.image)
    detector = ctx.small_vlm()
    bank = getattr(detector, "bank", None)
    if bank is not None:  # route each concept to its meta adapter (stored one, else nearest centroid)
        memory = ctx.memory()
        for q in queries:
            emb = (lambda n=q.name: memory.concept_embedding(n)) if by_name[q.name].reference_images else None
            q.adapter = bank.route_concept(q.adapter, emb)
    # The image is bound here, not passed as the traced input, so it never lands in a trace.
    detect = RunnableLambda(lambda qs: detector.detect(img, qs, round=round_), name="small_vlm.detect")
    raw = detect.invoke(queries, config=_call_config(ctx, "small_vlm.detect", names, round_))
    got = {d.concept: d for d in raw}
    new: list[Detection] = []
    for q in queries:
        d = got.get(q.name)
        if d is None:  # never silently "absent": a missing answer is unknown
            d = Detection(concept=q.name, status="unknown", confidence=0.0, evidence="no detection returned")
        new.append(d.model_copy(update={"round": round_}))
    return {"detections": [*state.detections, *new], "round": round_, "pending": []}


# -- reflect ---------------------------------------------------------------------------------------------


def claims_to_verify(state: State) -> list[Detection]:
    """This round's present-claims, plus absent/unknown claims about concepts the question names."""
    asked = {c.name for c in state.candidates if c.asked}
    return [d for d in state.detections if d.round == state.round and (d.status == "present" or d.concept in asked)]


def reflect(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """ONE large-VLM call verifying every claim of the round; disputed claims are queued for a loop-back."""
    ctx = context_of(runtime)
    to_check = claims_to_verify(state)
    if not to_check:
        return {}
    claims = prompting.make_claims(to_check, {c.name: c for c in state.candidates})
    sha, img = _open_image(ctx, state.image)
    settings = ctx.get_settings()
    names = [c.concept for c in claims]
    cfg = _call_config(ctx, "reflect.verify", names, state.round, prompt_version=prompts.VERIFY_PROMPT_VERSION)
    messages: list[BaseMessage] = prompting.verify_messages(claims, _image_part(sha, img, settings.large.max_image_side))
    calls = state.large_vlm_calls
    flags = list(state.flags)
    parsed: dict[str, prompting.RawVerdict] | None = None
    try:
        model = ctx.large_vlm()
        for attempt in range(2):  # one retry on malformed output, then "unverified" + a flag
            calls += 1
            reply = call_large_vlm(model, messages, config=cfg)
            text = prompting.content_text(reply.content)
            try:
                parsed = prompting.parse_verdicts(text, claims)
                break
            except ValueError as exc:
                log.warning("verifier output malformed (attempt %d): %s", attempt + 1, exc)
                messages = [*messages, AIMessage(text), prompting.verify_retry_message(claims)]
        if parsed is None:
            flags.append(f"verifier_output_malformed:round{state.round}")
    except LargeVLMUnavailableError as exc:
        flags.append(f"large_vlm_unreachable: {exc}")
        verdicts = [Verdict(concept=c.concept, round=state.round, claim=c.claim, verdict="unverified",
                            feedback="large VLM unreachable", prompt_version=prompts.VERIFY_PROMPT_VERSION)
                    for c in claims]
        return {"verdicts": [*state.verdicts, *verdicts], "degraded": True, "flags": flags,
                "large_vlm_calls": calls, "pending": []}
    verdicts = []
    for c in claims:
        rv = (parsed or {}).get(c.id)
        verdicts.append(
            Verdict(concept=c.concept, round=state.round, claim=c.claim,
                    verdict=rv.verdict if rv else "unverified",  # type: ignore[arg-type]
                    visible=rv.visible if rv else None, location_ok=rv.location_ok if rv else None,
                    identity_ok=rv.identity_ok if rv else None,
                    feedback=prompting.scrub(rv.feedback)[:500] if rv else "no verdict returned",
                    prompt_version=prompts.VERIFY_PROMPT_VERSION)
        )
    disputed = [v.concept for v in verdicts if v.disputed]
    pending = disputed if disputed and state.round < ctx.rounds else []
    if disputed and not pending:
        flags.append(f"loop_bound_reached:round{state.round}")
    return {"verdicts": [*state.verdicts, *verdicts], "pending": pending, "flags": flags, "large_vlm_calls": calls}


# -- final report ----------------------------------------------------------------------------------------


def finalize(candidates: list[Candidate], detections: list[Detection], verdicts: list[Verdict]) -> list[FinalDetection]:
    """Per concept: its last claim, corrected by the verdict on that claim (or on the claim before it)."""
    out = []
    for c in candidates:
        ds = [d for d in detections if d.concept == c.name]
        if not ds:
            continue
        d = max(ds, key=lambda x: x.round)
        v = next((v for v in reversed(verdicts) if v.concept == c.name and v.round == d.round), None)
        present, verified, note = _resolve(d, v)
        if v is None and present == "false":
            # re-run after a refuted present-claim now agrees with the verifier: that is verified
            prev = next((p for p in reversed(verdicts) if p.concept == c.name and p.round < d.round), None)
            verified = bool(prev and prev.claim == "present" and prev.verdict == "disagree")
        out.append(
            FinalDetection(
                concept=c.name, present=present, verified=verified,
                location_absolute=d.location_absolute if present == "true" else None,
                location_relative=d.location_relative if present == "true" else None,
                category=c.category, attributes=c.attributes, note=note,
            )
        )
    return out


def _resolve(d: Detection, v: Verdict | None) -> tuple[str, bool, str]:
    claimed = {"present": "true", "absent": "false"}.get(d.status, "unknown")
    if v is None or v.verdict == "unverified":
        return claimed, False, ("not verified: " + v.feedback) if v else ""
    if v.verdict == "uncertain":
        return "unknown", True, f"verifier uncertain: {v.feedback}"
    if d.status == "unknown" or v.verdict == "disagree":
        seen = v.visible if v.visible is not None else (d.status != "present")
        return ("true" if seen else "false"), True, f"verifier: {v.feedback}"
    return claimed, True, ""


# -- reason ----------------------------------------------------------------------------------------------


def _history(state: State, limit: int) -> list[BaseMessage]:
    msgs = [m for m in state.messages if not isinstance(m, SystemMessage)]
    return msgs[-limit:] if limit else []


def reason(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """The answer, from the verified report and the chat history (or a degraded one, never a crash)."""
    ctx = context_of(runtime)
    settings = ctx.get_settings()
    visual = state.image is not None
    final = finalize(state.candidates, state.detections, state.verdicts) if visual else []
    flags = list(state.flags)
    calls = state.large_vlm_calls
    answer: Answer
    if state.degraded:
        answer = prompting.degraded_answer(final, state.candidates)
    else:
        part = None
        if visual:
            sha, img = _open_image(ctx, state.image)
            part = _image_part(sha, img, settings.large.max_image_side)
        messages = prompting.reason_messages(
            state.question, _history(state, ctx.history_limit), final=final,
            candidates=state.candidates, image_part=part,
        )
        cfg = _call_config(ctx, "reason.answer", [c.name for c in state.candidates], state.round,
                           prompt_version=prompts.REASON_PROMPT_VERSION)
        try:
            calls += 1
            reply = call_large_vlm(ctx.large_vlm(), messages, config=cfg)
            answer = prompting.parse_answer(prompting.content_text(reply.content))
            if not answer.structured:
                flags.append("answer_unstructured")
        except LargeVLMUnavailableError as exc:
            flags.append(f"large_vlm_unreachable: {exc}")
            answer = prompting.degraded_answer(final, state.candidates)
    last = state.messages[-1] if state.messages else None
    asked_in_messages = isinstance(last, HumanMessage) and prompting.content_text(last.content).strip() == state.question
    turn: list[BaseMessage] = [] if asked_in_messages else [
        HumanMessage(state.question, additional_kwargs={"image": state.image} if state.image else {})
    ]
    turn += [
        AIMessage(answer.text, additional_kwargs={"concepts_used": answer.concepts_used, "degraded": answer.degraded}),
    ]
    # Keep the checkpointed history bounded (the thread's size must not grow with its age).
    keep = max(ctx.history_limit - len(turn) - int(asked_in_messages), 0)
    old = [m for m in state.messages if m.id and not (asked_in_messages and m is last)]
    drop = [RemoveMessage(id=m.id) for m in old[: max(len(old) - keep, 0)]]
    return {
        "answer": answer,
        "final": final,
        "degraded": state.degraded or answer.degraded,
        "flags": flags,
        "large_vlm_calls": calls,
        "messages": [*drop, *turn],
        "question": "",
        "image": None,
    }

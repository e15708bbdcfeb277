"""The four nodes of the SLC graph: recall, personalize, reflect, reason (async functions, one job each).

Why these boundaries: each node is one model (memory, small VLM, large VLM as verifier, large VLM as
answerer), so a trace reads as "what was recalled, what the small model claimed, what the large model
thought of it, what was answered", and a failure is attributable. Every claim of every round and every
verdict is kept in state; the final report is derived from them by :func:`finalize` (pure, tested alone).
Each node reads the run's choices from ``runtime.context`` and its collaborators from the
:class:`~slc.graphs.services.ServiceFactory` the graph is bound to; whatever may block goes through
:class:`~slc.graphs.execution.Calls`, so the same body serves ``invoke`` and ``ainvoke``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage, SystemMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.config import get_config
from langgraph.runtime import Runtime

from slc.agent import prompts
from slc.agent.detection import ConceptQuery, Detection
from slc.agent.errors import LargeVLMReplyError, LargeVLMUnavailableError
from slc.agent.images import load_image
from slc.agent.large_vlm import CallAttempts, image_part
from slc.graphs import prompting, transcripts
from slc.graphs.context import Context, RunOptions
from slc.graphs.execution import Calls
from slc.graphs.photos import open_photo, photo_part, store_photo
from slc.graphs.services import ServiceFactory
from slc.graphs.state import Answer, Candidate, FinalDetection, State, Verdict
from slc.memory.queries import concept_query

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)


def _call_config(opts: RunOptions, name: str, concepts: list[str], round_: int, **extra: Any) -> RunnableConfig:
    return {
        "run_name": name,
        "tags": ["slc", name.split(".")[0]],
        "metadata": {"tenant": opts.tenant, "concepts": concepts, "round": round_, **extra},
    }


def question_of(state: State) -> str:
    if state.question.strip():
        return state.question.strip()
    for m in reversed(state.messages):
        if isinstance(m, HumanMessage):
            return prompting.content_text(m.content).strip()
    return ""


def fault_flag(exc: LargeVLMUnavailableError) -> str:
    """The flag a degraded turn carries: ``large_vlm_bad_reply: ...`` (it answered, unusably) or
    ``large_vlm_unreachable: ...`` (it did not answer), with the reason."""
    kind = "large_vlm_bad_reply" if isinstance(exc, LargeVLMReplyError) else "large_vlm_unreachable"
    return f"{kind}: {exc}"


# -- recall ----------------------------------------------------------------------------------------------


async def recall(state: State, runtime: Runtime[Context], services: ServiceFactory, calls: Calls) -> dict[str, Any]:
    """Store the query photo (only its sha256 stays in state); candidates = concepts named in the question
    + concepts close to the photo (open set), as memory's recall merged them."""
    opts = RunOptions.resolve(runtime.context, services.settings)
    question = question_of(state)

    def photo() -> tuple[str | None, Image.Image | None]:
        if not state.image:
            return None, None
        store = services.image_store()
        sha = store_photo(store, state.image)  # InvalidImageError naming the file and the reason
        return sha, open_photo(store, sha)

    sha, img = await calls.blocking(photo)
    hits = await calls.blocking(lambda: services.memory(opts.tenant).recall(text=question or None, image=img))
    return {
        "question": question,
        "image": sha,
        "candidates": [Candidate.model_validate(h, from_attributes=True) for h in hits],
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


async def personalize(state: State, runtime: Runtime[Context], services: ServiceFactory, calls: Calls) -> dict[str, Any]:
    """Small-VLM detection: all candidates on round 0; on a loop-back only the disputed ones, with their
    reference images in context and the verifier's feedback."""
    opts = RunOptions.resolve(runtime.context, services.settings)
    by_name = {c.name: c for c in state.candidates}
    second_pass = bool(state.pending)
    round_ = state.round + 1 if second_pass else 0
    names = [n for n in (state.pending if second_pass else by_name) if n in by_name]
    feedback = {v.concept: v.feedback for v in state.verdicts if v.round == state.round} if second_pass else {}
    detector = await calls.blocking(services.small_vlm)

    def queries() -> list[ConceptQuery]:
        bank = detector.bank  # routes each concept to its meta adapter (stored one, else nearest centroid)
        memory = services.memory(opts.tenant) if bank is not None else None
        return [
            concept_query(by_name[n].concept, bank=bank,
                          embedding=(lambda n=n: memory.concept_embedding(n, bank=bank)) if memory is not None else None,
                          with_reference_images=second_pass or detector.protocol.uses_references,
                          feedback=feedback.get(n))
            for n in names
        ]

    qs = await calls.blocking(queries)
    img = await calls.blocking(lambda: open_photo(services.image_store(), state.image))
    # The image is bound here, not passed as the traced input, so it never lands in a trace.
    if _traced():  # the small VLM's own run in the trace (its claims, the image never)
        detect = RunnableLambda(lambda q: detector.detect(img, q, round=round_), name="small_vlm.detect")
        raw = await calls.runnable(detect, qs, _call_config(opts, "small_vlm.detect", names, round_))
    else:  # nobody traces: no child run to set up (~0.6 ms per turn, benchmarks/graph_overhead.py)
        raw = await calls.blocking(lambda: detector.detect(img, qs, round=round_))
    got = {d.concept: d for d in raw}
    new: list[Detection] = []
    for q in qs:
        d = got.get(q.name)
        if d is None:  # never silently "absent": a missing answer is unknown
            d = Detection(concept=q.name, status="unknown", confidence=0.0, evidence="no detection returned")
        new.append(d.model_copy(update={"round": round_}))
    return {"detections": [*state.detections, *new], "round": round_, "pending": []}


# -- reflect ---------------------------------------------------------------------------------------------


def claims_to_verify(state: State, recheck_absent: bool = True) -> list[Detection]:
    """This round's present-claims, plus (``recheck_absent``) absent/unknown claims about concepts the
    question names."""
    asked = {c.name for c in state.candidates if c.asked} if recheck_absent else set()
    return [d for d in state.detections if d.round == state.round and (d.status == "present" or d.concept in asked)]


def _next_round(state: State, verdicts: list[Verdict], opts: RunOptions, flags: list[str]) -> list[str]:
    """The disputed concepts to loop back with (none once the round bound is hit: then a flag says so)."""
    disputed = [v.concept for v in verdicts if v.disputed]
    pending = disputed if disputed and state.round < opts.reflection_rounds else []
    if disputed and not pending:
        flags.append(f"loop_bound_reached:round{state.round}")
    return pending


async def reflect(state: State, runtime: Runtime[Context], services: ServiceFactory, calls: Calls) -> dict[str, Any]:
    """ONE large-VLM call verifying every claim of the round (``reflection_style="per-concept"``: one call per
    claim, :func:`reflect_per_concept`); disputed claims are queued for a loop-back."""
    opts = RunOptions.resolve(runtime.context, services.settings)
    if opts.reflection_style == "per-concept":
        return await reflect_per_concept(state, opts, services, calls)
    to_check = claims_to_verify(state, opts.recheck_absent)
    if not to_check:
        return {}
    by_name = {c.name: c for c in state.candidates}
    claims = prompting.make_claims(to_check, by_name)
    large = services.settings.large
    part = await calls.blocking(lambda: photo_part(services.image_store(), state.image, large.max_image_side))

    def references() -> dict[str, list[dict[str, Any]]]:
        """Each claim's first reference photos, small and at OpenAI's "low" detail (a fixed token cost)."""
        if not large.verify_references:
            return {}
        return {c.id: [image_part(load_image(ref.path), large.reference_image_side, detail="low")
                       for ref in by_name[c.concept].concept.images[: large.verify_references]]
                for c in claims if c.concept in by_name}

    refs = await calls.blocking(references)
    names = [c.concept for c in claims]
    cfg = _call_config(opts, "reflect.verify", names, state.round, prompt_version=prompts.VERIFY_PROMPT_VERSION)
    messages: list[BaseMessage] = prompting.verify_messages(claims, part, refs)
    attempts = CallAttempts()  # every HTTP request counts, the client's retries included
    flags = list(state.flags)
    parsed: dict[str, prompting.RawVerdict] | None = None
    try:
        model = await calls.blocking(services.large_vlm)
        for attempt in range(2):  # one retry on malformed output, then "unverified" + a flag
            reply = await calls.chat(model, messages, cfg, deadline_s=large.call_deadline_s(), attempts=attempts)
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
        flags.append(fault_flag(exc))
        verdicts = [Verdict(concept=c.concept, round=state.round, claim=c.claim, verdict="unverified",
                            feedback="large VLM unreachable", prompt_version=prompts.VERIFY_PROMPT_VERSION)
                    for c in claims]
        return {"verdicts": [*state.verdicts, *verdicts], "degraded": True, "flags": flags,
                "large_vlm_calls": state.large_vlm_calls + attempts.n, "pending": []}
    calls_made = state.large_vlm_calls + attempts.n
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
    pending = _next_round(state, verdicts, opts, flags)
    return {"verdicts": [*state.verdicts, *verdicts], "pending": pending, "flags": flags, "large_vlm_calls": calls_made}


async def reflect_per_concept(state: State, opts: RunOptions, services: ServiceFactory, calls: Calls) -> dict[str, Any]:
    """The SLC paper's reflection: one large-VLM call per claim to check (the concepts the small VLM marked
    present; with ``recheck_absent`` also the named ones it did not), each asking the paper's two yes/no
    questions with the photo (no reference photos, no retry: N claims cost N calls). Both no => the concept
    is absent; one no => that location is cleared (:func:`slc.graphs.prompting.paper_verdict`). A reply
    without both answers leaves its claim unverified (flagged); an unreachable large VLM stops the round
    (the rest unverified, the turn degraded), as in the batched style."""
    to_check = claims_to_verify(state, opts.recheck_absent)
    if not to_check:
        return {}
    by_name = {c.name: c for c in state.candidates}
    large = services.settings.large
    part = await calls.blocking(lambda: photo_part(services.image_store(), state.image, large.max_image_side))
    flags = list(state.flags)
    calls_made = state.large_vlm_calls
    verdicts: list[Verdict] = []
    model = None
    for i, d in enumerate(to_check):
        questions = prompting.paper_questions(d, by_name.get(d.concept))
        cfg = _call_config(opts, "reflect.ask", [d.concept], state.round, prompt_version=prompts.PAPER_PROMPT_VERSION)
        attempts = CallAttempts()
        try:
            if model is None:
                model = await calls.blocking(services.large_vlm)
            reply = await calls.chat(model, prompting.paper_reflect_messages(questions, part), cfg,
                                     deadline_s=large.call_deadline_s(), attempts=attempts)
        except LargeVLMUnavailableError as exc:
            flags.append(fault_flag(exc))
            verdicts += [Verdict(concept=r.concept, round=state.round, claim=r.status, verdict="unverified",
                                 feedback="large VLM unreachable", prompt_version=prompts.PAPER_PROMPT_VERSION)
                         for r in to_check[i:]]
            return {"verdicts": [*state.verdicts, *verdicts], "degraded": True, "flags": flags,
                    "large_vlm_calls": calls_made + attempts.n, "pending": []}
        calls_made += attempts.n
        try:
            answers = prompting.parse_paper_answers(prompting.content_text(reply.content))
        except ValueError as exc:
            log.warning("reflection reply for %s unusable: %s", d.concept, exc)
            flags.append(f"verifier_output_malformed:round{state.round}:{d.concept}")
            verdicts.append(Verdict(concept=d.concept, round=state.round, claim=d.status, verdict="unverified",
                                    feedback="no yes/no answers returned", prompt_version=prompts.PAPER_PROMPT_VERSION))
            continue
        verdicts.append(prompting.paper_verdict(d, questions, answers, state.round))
    pending = _next_round(state, verdicts, opts, flags)
    return {"verdicts": [*state.verdicts, *verdicts], "pending": pending, "flags": flags, "large_vlm_calls": calls_made}


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
        cleared = set(v.cleared) if v is not None else set()
        out.append(
            FinalDetection(
                concept=c.name, present=present, verified=verified,
                location_absolute=d.location_absolute if present == "true" and "location-absolute" not in cleared
                else None,
                location_relative=d.location_relative if present == "true" and "location-relative" not in cleared
                else None,
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


def _traced() -> bool:
    """Whether the run has callback handlers (a tracer, LangGraph's message streaming)."""
    try:
        callbacks = get_config().get("callbacks")
    except RuntimeError:
        return False
    return bool(getattr(callbacks, "handlers", callbacks))


def _thread_id() -> str | None:
    """The run's thread (None: a run without a checkpointer's thread, e.g. a one-off ``invoke``)."""
    try:
        thread = (get_config().get("configurable") or {}).get("thread_id")
    except RuntimeError:  # not inside a runnable context
        return None
    return str(thread) if thread else None


def _history(state: State, limit: int) -> list[BaseMessage]:
    msgs = [m for m in state.messages if not isinstance(m, SystemMessage)]
    return msgs[-limit:] if limit else []


async def reason(state: State, runtime: Runtime[Context], services: ServiceFactory, calls: Calls) -> dict[str, Any]:
    """The answer, from the verified report and the chat history (or a degraded one, never a crash)."""
    opts = RunOptions.resolve(runtime.context, services.settings)
    visual = state.image is not None
    final = finalize(state.candidates, state.detections, state.verdicts) if visual else []
    paper = opts.report_style == "paper"
    if paper:
        final = prompting.paper_final(final)
    flags = list(state.flags)
    calls_made = state.large_vlm_calls
    answer: Answer
    if state.degraded:
        answer = prompting.degraded_answer(final, state.candidates)
    else:
        part = None
        if visual:
            max_side = services.settings.large.max_image_side
            part = await calls.blocking(lambda: photo_part(services.image_store(), state.image, max_side))
        messages = prompting.reason_messages(
            state.question, _history(state, opts.max_history_messages), final=final,
            candidates=state.candidates, image_part=part, report_style=opts.report_style,
        )
        version = prompts.PAPER_PROMPT_VERSION if paper and visual else prompts.REASON_PROMPT_VERSION
        cfg = _call_config(opts, "reason.answer", [c.name for c in state.candidates], state.round,
                           prompt_version=version)
        attempts = CallAttempts()  # every HTTP request counts, the client's retries included
        try:
            model = await calls.blocking(services.large_vlm)
            large = services.settings.large
            reply = await calls.chat(model, messages, cfg, deadline_s=large.call_deadline_s(), attempts=attempts)
            answer = prompting.parse_answer(prompting.content_text(reply.content), version)
            if not prompting.usable_text(answer.text):  # empty, control characters, no word at all
                raise LargeVLMReplyError(f"The large VLM's answer is empty or garbage ({answer.text[:40]!r}).")
            if not answer.structured:
                flags.append("answer_unstructured")
        except LargeVLMUnavailableError as exc:
            flags.append(fault_flag(exc))
            answer = prompting.degraded_answer(final, state.candidates)
        calls_made += attempts.n
    last = state.messages[-1] if state.messages else None
    asked_in_messages = isinstance(last, HumanMessage) and prompting.content_text(last.content).strip() == state.question
    turn: list[BaseMessage] = [] if asked_in_messages else [
        HumanMessage(state.question, additional_kwargs={"image": state.image} if state.image else {})
    ]
    turn += [
        AIMessage(answer.text, additional_kwargs={"concepts_used": answer.concepts_used, "degraded": answer.degraded}),
    ]
    store, thread = runtime.store, _thread_id()
    if store is not None and thread is not None:  # the full transcript, apart from the bounded checkpoints
        said = [last, *turn] if asked_in_messages else turn
        await calls.blocking(lambda: transcripts.record_turn(store, opts.tenant, thread, said))
    # Keep the checkpointed history bounded (the thread's size must not grow with its age).
    keep = max(opts.max_history_messages - len(turn) - int(asked_in_messages), 0)
    old = [m for m in state.messages if m.id and not (asked_in_messages and m is last)]
    drop = [RemoveMessage(id=m.id) for m in old[: max(len(old) - keep, 0)]]
    return {
        "answer": answer,
        "final": final,
        "degraded": state.degraded or answer.degraded,
        "flags": flags,
        "large_vlm_calls": calls_made,
        "messages": [*drop, *turn],
        "question": "",
        "image": None,
    }

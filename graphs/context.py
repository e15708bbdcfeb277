"""Per-run context of the SLC graph (LangGraph 1.x ``context_schema``): plain values only.

Why a context and not state: which tenant, how many reflection rounds, whether images may reach traces
are choices of the caller for this run, not facts of the conversation, so they are not checkpointed.
Why plain values: LangGraph Server and Studio receive the context as JSON and render it as a form, so it
holds no settings object and no services (the nodes get those from the service factory the graph is
bound to, :mod:`slc.graphs.services`). ``None`` means "the settings' value": :class:`RunOptions` is the
context with every default filled in from the settings of that factory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from slc.agent.settings import Settings

ReflectionStyle = Literal["batched", "per-concept"]
ReportStyle = Literal["json", "paper"]


@dataclass
class Context:
    """Run-time choices for one invocation; every ``None`` falls back to the settings."""

    tenant: str | None = None
    reflection_rounds: int | None = None
    #: False skips the reflect node entirely (personalize -> reason): the small VLM's claims reach the
    #: answerer unverified. ``reflection_rounds=0`` is different: it still verifies once, it only never
    #: loops back. The evals' "slc-noreflect" mode uses this to measure what verification buys.
    reflect: bool = True
    #: How reflect asks the large VLM. "batched" (ours): ONE call verifies every claim of the round, with
    #: the concepts' reference photos. "per-concept" (the SLC paper's): one call per claim, asking the
    #: paper's two yes/no questions about its category and locations (both no => absent, one no => that
    #: location cleared). The evals' "slc-paper" mode uses it with ``recheck_absent=False``,
    #: ``reflection_rounds=0`` and ``report_style="paper"``.
    reflection_style: ReflectionStyle = "batched"
    #: Whether reflect also re-checks absent/unknown claims about concepts the question names (ours: True;
    #: the paper never re-checks a concept the small VLM called absent: False).
    recheck_absent: bool = True
    #: How reason shows the detection report: "json" (ours: verified flags, notes, concept facts) or
    #: "paper" (the SLC paper's one line per concept, ``<c>: present=true; location-absolute=...``; an
    #: undetermined concept reads as absent there, as the paper reads unparseable detections).
    report_style: ReportStyle = "json"
    redact_images: bool | None = None
    max_history_messages: int | None = None


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """A :class:`Context` resolved against settings: what a node or a trace actually uses for this run."""

    tenant: str
    reflection_rounds: int
    reflect: bool
    reflection_style: ReflectionStyle = "batched"
    recheck_absent: bool = True
    report_style: ReportStyle = "json"
    redact_images: bool
    max_history_messages: int

    @classmethod
    def resolve(cls, context: Context | None, settings: Settings) -> RunOptions:
        """``context`` (None: all defaults) with each ``None`` replaced by the settings' value."""
        ctx = context or Context()
        if ctx.reflection_style not in ("batched", "per-concept"):
            raise ValueError(f"reflection_style must be 'batched' or 'per-concept', not {ctx.reflection_style!r}")
        if ctx.report_style not in ("json", "paper"):
            raise ValueError(f"report_style must be 'json' or 'paper', not {ctx.report_style!r}")
        return cls(
            tenant=ctx.tenant or settings.tenant,
            reflection_rounds=settings.reflection_rounds if ctx.reflection_rounds is None else ctx.reflection_rounds,
            reflect=ctx.reflect,
            reflection_style=ctx.reflection_style,
            recheck_absent=ctx.recheck_absent,
            report_style=ctx.report_style,
            redact_images=settings.tracing.redact_images if ctx.redact_images is None else ctx.redact_images,
            max_history_messages=(settings.max_history_messages if ctx.max_history_messages is None
                                  else ctx.max_history_messages),
        )


__all__ = ["Context", "ReflectionStyle", "ReportStyle", "RunOptions"]

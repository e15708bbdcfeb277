"""LangGraph Server custom auth (``langgraph.json`` "auth"): who is calling is who the tenant is.

Why: under LangGraph Server / ``langgraph dev`` the graph's input and context come from any client, so a
tenant named in ``context={"tenant": ...}`` proves nothing. Here every request must carry
``Authorization: Bearer <token>`` with a token of ``settings.auth.tokens`` ({tenant: token}); the tenant it
belongs to becomes the request's identity, which LangGraph Server hands every run as
``configurable.langgraph_auth_user_id`` and :class:`~slc.graphs.guard.GuardedGraph` makes the run's
tenant (memory, photos, threads). Resources are the caller's own: threads, runs, assistants and crons are
stamped with ``owner`` metadata when created and filtered by it on every read, search, update and delete
(so another user's thread is "not found"); the store is scoped to the caller's namespace. A run whose
context names another tenant is refused (403) before it is queued. No token, an unknown token, or no
tokens configured: 401 (the server fails closed).
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from langgraph_sdk import Auth

from slc.agent.settings import Settings, get_settings

auth = Auth()

OWNER = "owner"


def tenant_of(authorization: str | None, settings: Settings) -> str:
    """The tenant whose token ``authorization`` ("Bearer <token>") carries; HTTP 401 otherwise."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if not settings.auth.tokens:
        raise Auth.exceptions.HTTPException(
            status_code=401, detail="No API tokens are configured on this server (settings auth.tokens / SLC_AUTH__TOKENS)")
    if scheme.lower() != "bearer" or not token.strip():
        raise Auth.exceptions.HTTPException(status_code=401, detail="Send 'Authorization: Bearer <your token>'")
    found = None
    for tenant, secret in settings.auth.tokens.items():  # compare with every token: no timing hint of which
        if hmac.compare_digest(secret.get_secret_value().encode(), token.strip().encode()):
            found = tenant
    if found is None:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Unknown token")
    return found


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    settings = await asyncio.to_thread(get_settings)  # the first read may open slc.toml: off the event loop
    return {"identity": tenant_of(authorization, settings), "permissions": []}


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType:
    """Threads, assistants, crons: what the caller creates is theirs; what they reach must be theirs."""
    if isinstance(value, dict):
        value.setdefault("metadata", {})
        if isinstance(value["metadata"], dict):
            value["metadata"][OWNER] = ctx.user.identity
    return {OWNER: ctx.user.identity}


@auth.on.threads.create_run
async def own_runs(ctx: Auth.types.AuthContext, value: Auth.types.on.threads.create_run.value) -> Auth.types.FilterType:
    """A run on the caller's own thread, for the caller's own tenant."""
    context = (value.get("kwargs") or {}).get("context") or {}
    named = context.get("tenant") if isinstance(context, dict) else None
    if named not in (None, "", ctx.user.identity):
        raise Auth.exceptions.HTTPException(
            status_code=403, detail="context.tenant names another tenant: a run acts for its authenticated caller only")
    return await owner_only(ctx, value)


@auth.on.store
async def own_namespace(ctx: Auth.types.AuthContext, value: Auth.types.on.store.value) -> None:
    """The store is scoped to the caller: every namespace starts with their identity."""
    namespace = tuple(value.get("namespace") or ())
    if not namespace or namespace[0] != ctx.user.identity:
        value["namespace"] = (ctx.user.identity, *namespace)


__all__ = ["auth", "tenant_of"]

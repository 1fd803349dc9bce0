"""The scope of a request (region, park or enterprise, else the caller's own), resolved once and handed on."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from app.auth import PrincipalDep
from app.deps import SessionDep
from flows.access.scope import Scope, resolve_scope
from flows.kernel.bounds import MAX_ID, MAX_QUERY_TEXT

Region = Annotated[
    str | None, Query(description="adcode of the province, a prefecture or a county", max_length=MAX_QUERY_TEXT)
]
ParkId = Annotated[int | None, Query(description="park id", ge=1, le=MAX_ID)]
EnterpriseRef = Annotated[
    str | None, Query(description="enterprise id or Unified Social Credit Code", max_length=MAX_QUERY_TEXT)
]


def request_scope(
    session: SessionDep,
    principal: PrincipalDep,
    region: Region = None,
    park: ParkId = None,
    enterprise: EnterpriseRef = None,
) -> Scope:
    """The scope asked for in the query (at most one of region, park, enterprise), checked against the caller."""
    return resolve_scope(session=session, principal=principal, region=region, park=park, enterprise=enterprise)


def own_scope(session: SessionDep, principal: PrincipalDep) -> Scope:
    """The caller's own scope: a bureau's region, a park manager's park, an enterprise; the province for admins."""
    return resolve_scope(session=session, principal=principal)


ScopeDep = Annotated[Scope, Depends(request_scope)]
OwnScopeDep = Annotated[Scope, Depends(own_scope)]

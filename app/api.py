"""JSON API under /api/v1: thin routes over flows/ and maps/, every one behind the principal dependency."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel, Field

from app.api_revisions import ToleranceDep
from app.auth import PrincipalDep, get_principal, utcnow
from app.deps import SessionDep
from app.params import (
    CodePath,
    Id,
    IdQuery,
    MomentQuery,
    Offset,
    TextQuery,
    YearPath,
    YearQuery,
    checked_json,
    described_by,
)
from flows.access import accounts, directory, locks
from flows.access import trail as audit
from flows.access.accounts import Principal
from flows.access.files import MAX_ATTACHMENTS
from flows.access.scope import require_role
from flows.kernel.bounds import MAX_QUERY_TEXT, Code, Name, Password, ShortText, Text
from flows.kernel.bounds import Id as IdField
from flows.pages.stats import table_counts
from flows.waste import correction_asks, corrections, declarations, lock_checklist, revisions
from maps.datum import Datum, point_to_wgs84
from maps.geometry import to_geojson
from maps.layers import parks_layer, regions_layer
from maps.locate import locate
from maps.regions import SOURCE as REGION_SOURCE
from models import CorrectionRequest
from models.enterprise import EnterprisePublic
from models.enums import RegionLevel, UserRole
from models.reference import ParkPublic, RegionPublic
from models.waste import DeclarationPublic

router = APIRouter(dependencies=[Depends(get_principal), Depends(checked_json)])


class EnterprisesPublic(BaseModel):
    data: list[EnterprisePublic]
    count: int


class DirectoryEntry(BaseModel):
    id: int
    uscc: str
    name_zh: str
    name_en: str | None


class LocationPublic(BaseModel):
    province: str | None
    prefecture: str | None
    county: str | None
    park: int | None


class MePublic(BaseModel):
    user_id: int | None
    username: str
    role: UserRole
    scope_adcode: str | None
    park_id: int | None
    enterprise_id: int | None
    channel: str


class TokenCreate(BaseModel):
    name: ShortText = Field(min_length=1)


class TokenPublic(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="shown once; only its hash is stored")


class UserCreate(BaseModel):
    username: ShortText
    password: Password
    role: UserRole
    display_name: Name = ""
    scope_adcode: Code | None = None
    park_id: IdField | None = None
    enterprise_id: IdField | None = None


class UserPublic(BaseModel):
    id: int
    username: str
    display_name: str
    role: UserRole
    scope_adcode: str | None
    scope_park_id: int | None
    scope_enterprise_id: int | None
    is_active: bool


class AuditEntryPublic(BaseModel):
    id: int
    at: datetime
    user_id: int | None
    channel: str
    action: str
    table_name: str
    row_id: str
    enterprise_id: int | None
    other_enterprise_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    hash: str


class AuditPage(BaseModel):
    data: list[AuditEntryPublic]
    count: int


class AnchorPublic(BaseModel):
    entry_id: int = Field(description="the last entry of the log when the head was signed")
    hash: str
    count: int = Field(description="entries in the chain up to and including entry_id")
    at: datetime = Field(description="when that entry was written")
    signature: str = Field(description="HMAC-SHA256 of the head under the server's audit key")


class ChainPublic(BaseModel):
    ok: bool
    checked: int
    broken_at: int | None
    reason: str
    fault: str = Field(description="chain, unanchored, signature or head when not ok; empty when ok")
    anchored: bool = Field(description="a valid signed head covers the whole log")
    head: AnchorPublic | None


class LockCreate(BaseModel):
    region_adcode: Code
    year: int = Field(ge=2000, le=2100)
    confirm: bool = Field(default=False, description="true once GET /locks/checklist was reviewed; refused otherwise")


class LockPublic(BaseModel):
    region_adcode: str
    year: int
    locked_by: int | None
    locked_at: datetime


class DeclarationView(DeclarationPublic):
    under_correction: list[int] = Field(
        default_factory=list, description="the open correction asks of a bureau on this declaration (their ids)"
    )


def _declaration_views(session: Any, rows: list[Any]) -> list[DeclarationView]:
    asks = correction_asks.under_correction(session=session, table="declaration", row_ids=[d.id for d in rows])
    return [
        DeclarationView(**DeclarationPublic.model_validate(d).model_dump(), under_correction=asks.get(d.id, []))
        for d in rows
    ]


class CorrectionCreate(BaseModel):
    table: ShortText = "declaration"
    payload: dict[str, Any]
    reason: Text = Field(min_length=1)
    attachment_ids: list[int] = Field(
        default_factory=list, max_length=MAX_ATTACHMENTS, description="evidence (POST /attachments) for large changes"
    )


class CorrectionDecision(BaseModel):
    note: Text = ""


class CorrectionPublic(BaseModel):
    id: int
    table_name: str
    enterprise_id: int
    year: int
    payload: dict[str, Any]
    reason: str
    status: str
    requested_by: int | None
    requested_at: datetime
    decided_by: int | None
    decided_at: datetime | None
    decision_note: str | None
    attachment_ids: list[int] = []


# --- who am I, tokens ---------------------------------------------------------------------------------------


@router.get("/me", response_model=MePublic, tags=["accounts"])
def me(principal: PrincipalDep) -> MePublic:
    """The caller's account, role and scope."""
    return MePublic(
        user_id=principal.user_id,
        username=principal.username,
        role=principal.role,
        scope_adcode=principal.scope_adcode,
        park_id=principal.park_id,
        enterprise_id=principal.enterprise_id,
        channel=str(principal.channel),
    )


@router.get("/tokens", response_model=list[TokenPublic], tags=["accounts"])
def list_tokens(session: SessionDep, principal: PrincipalDep) -> list[TokenPublic]:
    """The caller's own API tokens."""
    return [
        TokenPublic.model_validate(t, from_attributes=True)
        for t in accounts.list_tokens(session=session, principal=principal)
    ]


@router.post("/tokens", response_model=TokenCreated, status_code=201, tags=["accounts"])
def create_token(body: TokenCreate, session: SessionDep, principal: PrincipalDep) -> TokenCreated:
    """Create an API token for the caller's account; the token is in this answer only."""
    token, raw = accounts.create_token(session=session, principal=principal, name=body.name, now=utcnow())
    session.commit()
    return TokenCreated(**TokenPublic.model_validate(token, from_attributes=True).model_dump(), token=raw)


@router.delete("/tokens/{token_id}", status_code=204, tags=["accounts"])
def revoke_token(token_id: Id, session: SessionDep, principal: PrincipalDep) -> Response:
    """Revoke one of the caller's tokens."""
    accounts.revoke_token(session=session, principal=principal, token_id=token_id, now=utcnow())
    session.commit()
    return Response(status_code=204)


# --- users (administrators) -----------------------------------------------------------------------------------


@router.get("/users", response_model=list[UserPublic], tags=["accounts"])
def list_users(session: SessionDep, principal: PrincipalDep) -> list[UserPublic]:
    """Every account (administrators)."""
    require_role(principal, UserRole.admin)
    return [UserPublic.model_validate(u, from_attributes=True) for u in accounts.list_users(session=session)]


@router.post("/users", response_model=UserPublic, status_code=201, tags=["accounts"])
def create_user(body: UserCreate, session: SessionDep, principal: PrincipalDep) -> UserPublic:
    """Create an account (administrators)."""
    require_role(principal, UserRole.admin)
    user = accounts.create_user(session=session, now=utcnow(), actor=principal, **body.model_dump())
    public = UserPublic.model_validate(user, from_attributes=True)
    session.commit()
    return public


@router.post("/users/{username}/disable", response_model=UserPublic, tags=["accounts"])
def disable_user(username: CodePath, session: SessionDep, principal: PrincipalDep) -> UserPublic:
    """Disable an account: its sessions end and its tokens stop working (administrators)."""
    require_role(principal, UserRole.admin)
    user = accounts.set_active(
        session=session,
        user=accounts.get_user(session=session, username=username),
        active=False,
        now=utcnow(),
        actor=principal,
    )
    session.commit()
    return UserPublic.model_validate(user, from_attributes=True)


# --- audit log ---------------------------------------------------------------------------------------------


@router.get("/audit", response_model=AuditPage, tags=["audit"])
def audit_log(
    session: SessionDep,
    principal: PrincipalDep,
    enterprise_id: IdQuery = None,
    table: TextQuery = None,
    since: MomentQuery = None,
    until: MomentQuery = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """The audit trail, newest first, filtered by enterprise, table and period (bureaus and administrators)."""
    filters = audit.AuditFilter(enterprise_id=enterprise_id, table=table, since=since, until=until)
    rows, count = audit.list_entries(session=session, principal=principal, filters=filters, offset=offset, limit=limit)
    return AuditPage(data=[AuditEntryPublic.model_validate(r, from_attributes=True) for r in rows], count=count)


@router.get("/audit/verify", response_model=ChainPublic, tags=["audit"])
def verify_audit(session: SessionDep, principal: PrincipalDep) -> ChainPublic:
    """Re-compute the hash chain of the whole log and check its signed head (bureaus and administrators)."""
    require_role(principal, UserRole.bureau)
    check = audit.verify_chain(session=session)
    return ChainPublic(
        ok=check.ok,
        checked=check.checked,
        broken_at=check.broken_at,
        reason=check.reason,
        fault=check.fault,
        anchored=check.anchored,
        head=AnchorPublic(**check.head.as_dict()) if check.head else None,
    )


@router.get("/audit/anchor", response_model=AnchorPublic, tags=["audit"])
def audit_anchor(session: SessionDep, principal: PrincipalDep) -> AnchorPublic:
    """The signed head of the log, to keep outside the database and check later (409 while the log does not verify)."""
    require_role(principal, UserRole.bureau)
    return AnchorPublic(**audit.current_anchor(session=session).as_dict())


# --- period locks and corrections -------------------------------------------------------------------------------


@router.get("/locks", response_model=list[LockPublic], tags=["audit"])
def list_locks(session: SessionDep, principal: PrincipalDep) -> list[LockPublic]:
    """Locked (region, year) pairs."""
    return [
        LockPublic.model_validate(lock, from_attributes=True)
        for lock in locks.list_locks(session=session, principal=principal)
    ]


@router.post("/locks", response_model=LockPublic, status_code=201, tags=["audit"])
def lock_period(body: LockCreate, session: SessionDep, principal: PrincipalDep) -> LockPublic:
    """Lock a reporting year for a region (bureaus of that region or above), its checklist confirmed."""
    lock = lock_checklist.lock_year(
        session=session,
        principal=principal,
        adcode=body.region_adcode,
        year=body.year,
        confirm=body.confirm,
        now=utcnow(),
    )
    session.commit()
    return LockPublic.model_validate(lock, from_attributes=True)


@router.delete("/locks/{adcode}/{year}", status_code=204, tags=["audit"])
def unlock_period(adcode: CodePath, year: YearPath, session: SessionDep, principal: PrincipalDep) -> Response:
    """Unlock a reporting year for a region."""
    locks.unlock_period(session=session, principal=principal, adcode=adcode, year=year, now=utcnow())
    session.commit()
    return Response(status_code=204)


@router.get("/corrections", response_model=list[CorrectionPublic], tags=["audit"])
def list_corrections(session: SessionDep, principal: PrincipalDep, status: TextQuery = None) -> list[CorrectionPublic]:
    """Corrections in scope, newest first."""
    rows = corrections.list_corrections(session=session, principal=principal, status=status)
    return _public(session, rows)


def _public(session: Any, rows: list[CorrectionRequest]) -> list[CorrectionPublic]:
    evidence = revisions.evidence_of(session=session, correction_ids=[c.id for c in rows if c.id is not None])
    return [
        CorrectionPublic.model_validate(c, from_attributes=True).model_copy(
            update={"attachment_ids": [a.id for a in evidence.get(c.id or 0, [])]}
        )
        for c in rows
    ]


@router.post("/corrections", response_model=CorrectionPublic, status_code=201, tags=["audit"])
def request_correction(
    body: CorrectionCreate, session: SessionDep, principal: PrincipalDep, tolerance: ToleranceDep
) -> CorrectionPublic:
    """File a correction to a locked period, with its reason (and attachments when a weight changes beyond the
    tolerance); it waits for a bureau's approval."""
    correction = corrections.request_correction(
        session=session,
        principal=principal,
        table=body.table,
        payload=body.payload,
        reason=body.reason,
        now=utcnow(),
        attachment_ids=body.attachment_ids,
        tolerance=tolerance,
    )
    session.commit()
    return _public(session, [correction])[0]


def _decide(session: Any, principal: Principal, correction_id: int, approve: bool, note: str) -> CorrectionPublic:
    correction = corrections.decide_correction(
        session=session, principal=principal, correction_id=correction_id, approve=approve, note=note, now=utcnow()
    )
    session.commit()
    return _public(session, [correction])[0]


@router.post("/corrections/{correction_id}/approve", response_model=CorrectionPublic, tags=["audit"])
def approve_correction(
    correction_id: Id, body: CorrectionDecision, session: SessionDep, principal: PrincipalDep
) -> CorrectionPublic:
    """Approve a correction: it takes effect now (bureaus of the enterprise's region)."""
    return _decide(session, principal, correction_id, True, body.note)


@router.post("/corrections/{correction_id}/reject", response_model=CorrectionPublic, tags=["audit"])
def reject_correction(
    correction_id: Id, body: CorrectionDecision, session: SessionDep, principal: PrincipalDep
) -> CorrectionPublic:
    """Reject a correction; the locked data stays as it was."""
    return _decide(session, principal, correction_id, False, body.note)


# --- declarations ----------------------------------------------------------------------------------------------


@router.get("/declarations", response_model=list[DeclarationView], tags=["declarations"])
def list_declarations(
    session: SessionDep,
    principal: PrincipalDep,
    year: YearQuery = None,
    enterprise_id: IdQuery = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeclarationView]:
    """Declarations in the caller's scope, each with the bureau's open correction asks on it."""
    rows = declarations.list_declarations(
        session=session, principal=principal, year=year, enterprise_id=enterprise_id, offset=offset, limit=limit
    )
    return _declaration_views(session, rows)


@router.post("/declarations", response_model=DeclarationPublic, tags=["declarations"])
def save_declaration(
    body: Annotated[dict[str, Any], described_by(declarations.DeclarationIn), Body()],
    session: SessionDep,
    principal: PrincipalDep,
) -> DeclarationPublic:
    """File or replace an enterprise's declaration for one category and year (the enterprise itself)."""
    decl = declarations.parse_declaration(body)
    row = declarations.save_declaration(session=session, principal=principal, decl=decl, now=utcnow())
    session.commit()
    return DeclarationPublic.model_validate(row)


@router.get("/declarations/{declaration_id}", response_model=DeclarationView, tags=["declarations"])
def get_declaration(declaration_id: Id, session: SessionDep, principal: PrincipalDep) -> DeclarationView:
    """One declaration in scope, with the bureau's open correction asks on it."""
    row = declarations.get_declaration(session=session, principal=principal, declaration_id=declaration_id)
    return _declaration_views(session, [row])[0]


# --- reference data: regions and parks (every signed-in account) -----------------------------------------------


@router.get("/regions", response_model=list[RegionPublic], tags=["regions"])
def list_regions(session: SessionDep, level: RegionLevel | None = None, parent: TextQuery = None) -> list[RegionPublic]:
    """Administrative divisions (without boundaries)."""
    return directory.list_regions(session=session, level=level, parent=parent)


@router.get("/regions/geojson", tags=["regions"])
def regions_geojson(
    session: SessionDep,
    level: RegionLevel = RegionLevel.prefecture,
    parent: TextQuery = None,
    tolerance: Annotated[float, Query(ge=0, le=0.1)] = 0.005,
) -> dict[str, Any]:
    """Region boundaries as a GeoJSON FeatureCollection, simplified for display."""
    return regions_layer(session=session, level=level, parent=parent, tolerance=tolerance)


@router.get("/regions/{adcode}", response_model=RegionPublic, tags=["regions"])
def get_region(session: SessionDep, adcode: CodePath) -> RegionPublic:
    """One division."""
    return RegionPublic.model_validate(directory.get_region(session=session, adcode=adcode))


@router.get("/regions/{adcode}/geojson", tags=["regions"])
def region_geojson(session: SessionDep, adcode: CodePath) -> dict[str, Any]:
    """One division's full boundary as a GeoJSON Feature."""
    region = directory.get_region(session=session, adcode=adcode)
    props = RegionPublic.model_validate(region).model_dump(mode="json")
    # RFC 7946 coordinates are WGS84; said outright, since the source (AMap) was not and was converted on load.
    props |= {"datum": "WGS84", "source": REGION_SOURCE}
    return {"type": "Feature", "id": adcode, "geometry": to_geojson(region.geom), "properties": props}


@router.get("/parks", response_model=list[ParkPublic], tags=["parks"])
def list_parks(session: SessionDep, region: TextQuery = None) -> list[ParkPublic]:
    """Industrial parks, optionally within a region."""
    return directory.list_parks(session=session, region=region)


@router.get("/parks/geojson", tags=["parks"])
def parks_geojson(session: SessionDep) -> dict[str, Any]:
    """Park boundaries as a GeoJSON FeatureCollection."""
    return parks_layer(session=session)


@router.get("/parks/{park_id}", response_model=ParkPublic, tags=["parks"])
def get_park(session: SessionDep, park_id: Id) -> ParkPublic:
    """One park."""
    return ParkPublic.model_validate(directory.get_park(session=session, park_id=park_id))


@router.get("/locate", response_model=LocationPublic, tags=["regions"])
def locate_point(
    session: SessionDep,
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
    datum: Datum = Datum.wgs84,
) -> LocationPublic:
    """The province, prefecture, county and park a point lies in (WGS84, or GCJ-02 / BD-09 moved to WGS84 first)."""
    lon, lat = point_to_wgs84(lon, lat, datum)
    return LocationPublic(**locate(session=session, lon=lon, lat=lat).as_dict())


# --- enterprises (scoped) ------------------------------------------------------------------------------------


@router.get("/enterprises", response_model=EnterprisesPublic, tags=["enterprises"])
def list_enterprises(
    session: SessionDep,
    principal: PrincipalDep,
    region: TextQuery = None,
    park_id: IdQuery = None,
    role: TextQuery = None,
    q: TextQuery = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> EnterprisesPublic:
    """Enterprises in the caller's scope, filtered and paginated; count is the total before pagination."""
    page = directory.list_enterprises(
        session=session,
        principal=principal,
        region=region,
        park_id=park_id,
        role=role,
        q=q,
        offset=offset,
        limit=limit,
    )
    return EnterprisesPublic(data=page.data, count=page.count)


@router.get("/enterprises/directory", response_model=list[DirectoryEntry], tags=["enterprises"])
def enterprise_directory(
    session: SessionDep,
    q: Annotated[str, Query(min_length=2, max_length=MAX_QUERY_TEXT)],
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> list[DirectoryEntry]:
    """Names and credit codes only, to address a receiver; open to every signed-in account."""
    return [DirectoryEntry(**row) for row in directory.search_directory(session=session, q=q, limit=limit)]


@router.get("/enterprises/{enterprise_id}", response_model=EnterprisePublic, tags=["enterprises"])
def get_enterprise(session: SessionDep, principal: PrincipalDep, enterprise_id: Id) -> EnterprisePublic:
    """One enterprise in scope, with its roles."""
    return directory.get_enterprise(session=session, principal=principal, enterprise_id=enterprise_id)


@router.get("/stats", tags=["health"])
def stats(session: SessionDep, principal: PrincipalDep) -> dict[str, int]:
    """Row counts of the main tables (bureaus and administrators)."""
    require_role(principal, UserRole.bureau)
    return table_counts(session=session)

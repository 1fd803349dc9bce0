"""A small world for access tests: two prefectures, two parks, three enterprises, one account per role and scope."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import overload

from shapely.geometry import box
from sqlmodel import Session

from flows.access import accounts
from flows.access.accounts import Principal
from flows.kernel.uscc import make_uscc
from flows.waste.manifests import reserve_numbers
from maps.locate import try_locate
from maps.parks import ParkSpec, create_park
from models import Declaration, Enterprise, EnterpriseRoleLink, Manifest, PeriodLock
from models.enums import Channel, EnterpriseRole, ManifestStatus, Route, UserRole
from models.quantity import as_tonnes

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@overload
def t(value: None) -> None: ...
@overload
def t(value: float | Decimal | str) -> Decimal: ...
def t(value: float | Decimal | str | None) -> Decimal | None:
    """Tonnes as the models hold them: an exact Decimal of whole kilograms."""
    return None if value is None else as_tonnes(value)


PASSWORD = "correct horse battery"


@dataclass
class World:
    park_a: int = 0  # in Panzhihua (510400)
    park_b: int = 0  # in Deyang (510600)
    e1: int = 0  # generator in park A
    e2: int = 0  # utiliser in Panzhihua, outside the park
    e3: int = 0  # generator in park B
    decl_e1: int = 0
    decl_e3: int = 0
    batch_draft: int = 0  # E1 -> E2, 2024
    batch_dispatched: int = 0
    batch_received: int = 0
    users: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    principals: dict[str, Principal] = field(default_factory=dict)


ACCOUNTS: dict[str, dict[str, object]] = {
    "admin": {"role": UserRole.admin},
    "bureau_sc": {"role": UserRole.bureau, "scope_adcode": "510000"},
    "bureau_pzh": {"role": UserRole.bureau, "scope_adcode": "510400"},
    "bureau_dy": {"role": UserRole.bureau, "scope_adcode": "510600"},
    "park_a": {"role": UserRole.park_manager, "park": "a"},
    "park_b": {"role": UserRole.park_manager, "park": "b"},
    "ent1": {"role": UserRole.enterprise, "enterprise": "e1"},
    "ent3": {"role": UserRole.enterprise, "enterprise": "e3"},
}


def add_enterprise(
    session: Session, n: int, lon: float, lat: float, role: EnterpriseRole, name: tuple[str, str | None] | None = None
) -> int:
    """An enterprise numbered n, placed where its point lies, with one role; returns its id."""
    loc = try_locate(session=session, lon=lon, lat=lat)
    name_zh, name_en = name or (f"测试企业{n}", f"Test Enterprise {n}")
    e = Enterprise(
        uscc=make_uscc(f"91510000MA000{n:03d}"),
        name_zh=name_zh,
        name_en=name_en,
        lon=lon,
        lat=lat,
        province_adcode=loc.province,
        prefecture_adcode=loc.prefecture,
        county_adcode=loc.county,
        park_id=loc.park,
    )
    session.add(e)
    session.flush()
    assert e.id is not None
    session.add(EnterpriseRoleLink(enterprise_id=e.id, role=role))
    return e.id


def build_world(session: Session, *, with_tokens: bool = True) -> World:
    """Create the world and commit it."""
    w = World()
    park_a = create_park(
        ParkSpec(name_zh="攀枝花钒钛园区", boundary=box(101.70, 26.56, 101.74, 26.60)), session=session
    )
    park_b = create_park(
        ParkSpec(name_zh="德阳磷化工园区", boundary=box(104.38, 31.11, 104.42, 31.15)), session=session
    )
    assert park_a.id is not None and park_b.id is not None
    w.park_a, w.park_b = park_a.id, park_b.id
    w.e1 = add_enterprise(session, 1, 101.72, 26.58, EnterpriseRole.generator)
    w.e2 = add_enterprise(session, 2, 101.60, 26.55, EnterpriseRole.utiliser)
    w.e3 = add_enterprise(session, 3, 104.40, 31.13, EnterpriseRole.generator)
    for attr, eid in (("decl_e1", w.e1), ("decl_e3", w.e3)):
        d = Declaration(enterprise_id=eid, category_code="SW01", year=2023, generated_t=t(100), utilised_t=t(80))
        session.add(d)
        session.flush()
        setattr(w, attr, d.id)
    session.add(PeriodLock(region_adcode="510400", year=2021, locked_at=NOW))
    numbers = reserve_numbers(session, 2024, 3)
    for number, status in zip(numbers, ("draft", "dispatched", "received"), strict=True):
        batch = Manifest(
            number=number,
            shipper_id=w.e1,
            receiver_id=w.e2,
            category_code="SW01",
            route=Route.cement_admixture,
            year=2024,
            status=ManifestStatus(status),
            weight_dispatched_t=t(30.0),
            dispatched_at=None if status == "draft" else datetime(2024, 5, 2, 8, tzinfo=UTC),
            weight_received_t=t(29.8 if status == "received" else None),
            received_at=datetime(2024, 5, 2, 15, tzinfo=UTC) if status == "received" else None,
            created_at=datetime(2024, 5, 1, tzinfo=UTC),
        )
        session.add(batch)
        session.flush()
        setattr(w, f"batch_{status}", batch.id)
    for name, spec in ACCOUNTS.items():
        user = accounts.create_user(
            session=session,
            username=name,
            password=PASSWORD,
            role=str(spec["role"]),
            now=NOW,
            scope_adcode=spec.get("scope_adcode"),  # type: ignore[arg-type]
            park_id={"a": w.park_a, "b": w.park_b}.get(str(spec.get("park"))),
            enterprise_id={"e1": w.e1, "e3": w.e3}.get(str(spec.get("enterprise"))),
        )
        assert user.id is not None
        w.users[name] = user.id
        principal = accounts.principal_of(user, Channel.api)
        w.principals[name] = principal
        if with_tokens:
            _, raw = accounts.create_token(session=session, principal=principal, name="test", now=NOW)
            w.tokens[name] = raw
    session.commit()
    return w


def add_receiver_account(session: Session, w: World) -> World:
    """An account (with a token, `ent2`) for E2, the utiliser that receives the world's batches; commit."""
    ent2 = accounts.create_user(
        session=session, username="ent2", password=PASSWORD, role="enterprise", now=NOW, enterprise_id=w.e2
    )
    principal = accounts.principal_of(ent2, Channel.api)
    _, raw = accounts.create_token(session=session, principal=principal, name="t", now=NOW)
    w.tokens["ent2"] = raw
    w.principals["ent2"] = principal
    session.commit()
    return w


def add_account(session: Session, w: World, name: str, enterprise_id: int) -> None:
    """An enterprise account `name` with an API token (in w.tokens) for the given enterprise; commit."""
    user = accounts.create_user(
        session=session, username=name, password=PASSWORD, role="enterprise", now=NOW, enterprise_id=enterprise_id
    )
    _, raw = accounts.create_token(
        session=session, principal=accounts.principal_of(user, Channel.api), name="t", now=NOW
    )
    session.commit()
    w.tokens[name] = raw

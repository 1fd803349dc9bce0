"""A small site for the report tests: a generator in park A shipping slag to a utiliser whose licence is too small,
logged, dispatched and received through the API (so that the allocation behind the bottom-up figure is kept)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.testclient import TestClient
from sqlmodel import Session

from models import Declaration, Enterprise
from models.enums import EnterpriseRole
from tests.world import World, add_account, add_enterprise, build_world, t

YEAR = 2025
GENERATOR = ("攀枝花钢渣产生厂", "Panzhihua Slag Works")
UTILISER = ("攀西建材利用公司", "Panxi Building Materials Co.")
# (dispatched at, dispatched t, received t or None while on the road), Beijing time
SHIPMENTS = (
    ("2025-03-10T08:00:00+08:00", 20, 20),
    ("2025-06-05T08:00:00+08:00", 25, 22),  # 12% short: a weight discrepancy
    ("2025-06-20T08:00:00+08:00", 15, 15),
    ("2025-09-01T08:00:00+08:00", 5, None),
)
CAPACITY_T = 50  # below the 57 t received: capacity exceeded


@dataclass
class Site:
    world: World
    generator: int
    utiliser: int


def as_(w: World, who: str, lang: str = "en") -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[who]}", "Accept-Language": lang}


def build_site(client: TestClient, session: Session) -> Site:
    """A generator in park A shipping slag to a utiliser whose licence is too small for what it took in."""
    w = build_world(session)
    gen = add_enterprise(session, 4, 101.71, 26.57, EnterpriseRole.generator, name=GENERATOR)
    use = add_enterprise(session, 5, 101.61, 26.54, EnterpriseRole.utiliser, name=UTILISER)
    add_account(session, w, "gen", gen)
    add_account(session, w, "use", use)
    session.add(
        Declaration(
            enterprise_id=gen, category_code="SW01", year=YEAR, generated_t=t(120), utilised_t=t(90), stored_t=t(30)
        )
    )
    session.commit()
    receiver = session.get(Enterprise, use)
    assert receiver is not None
    licence = {
        "uscc": receiver.uscc,
        "activity": "utilisation",
        "category": "SW01",
        "valid_from": "2024-01-01",
        "valid_to": None,
        "capacity_t": str(CAPACITY_T),
        "number": "川固利〔2024〕0005号",
    }
    made = client.post("/api/v1/licences", json=licence, headers=as_(w, "bureau_pzh"))
    assert made.status_code == 201, made.text
    for at, sent, got in SHIPMENTS:
        body = {"receiver_id": use, "category_code": "SW01", "route": "building_materials", "weight_dispatched_t": sent}
        batch = client.post("/api/v1/manifests", headers=as_(w, "gen"), json=body)
        assert batch.status_code == 201, batch.text
        ident = batch.json()["id"]
        out = client.post(f"/api/v1/manifests/{ident}/dispatch", headers=as_(w, "gen"), json={"dispatched_at": at})
        assert out.status_code == 200, out.text
        if got is not None:
            done = client.post(
                f"/api/v1/manifests/{ident}/receive",
                headers=as_(w, "use"),
                json={"weight_received_t": got, "received_at": at.replace("08:00", "16:00")},
            )
            assert done.status_code == 200, done.text
    return Site(w, gen, use)

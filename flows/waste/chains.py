"""Waste chains: each tonne that reaches its final step allocated back, through every hop, to its first manifests.

A manifest to a collector, store or pre-treatment plant (route `storage` or `transfer`) delivers a lot to an
intermediary; a manifest the intermediary sends on names the lots it draws from (`sources`), with tonnes or pro rata to
what each lot received. Every lot carries its composition: whole kilograms per original manifest. A draw takes from
what the lot still holds, in proportion, rounded by largest remainder, so that kilograms are neither made nor lost:
each original manifest's kilograms are, at any moment, held at an intermediary, on the road, or at a final step, and
never more than were received from it at the first hop. A forwarding that names no source draws from the
intermediary's lots of that category still held when it left, oldest first in proportion, and is flagged.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Table, delete, event, func, insert, or_, tuple_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from flows.access.trail import serialise_writers
from flows.kernel.clock import stored_utc
from flows.kernel.errors import InvalidInput
from flows.kernel.messages import Term
from flows.kernel.quantity import tonnes as kg_as_tonnes
from flows.waste import summaries
from models import Manifest, ManifestDraw, ManifestShare, ManifestSource
from models.enums import INTERMEDIATE_ROUTES as INTERMEDIATE
from models.enums import ManifestStatus, Placement
from models.quantity import Tonnes

INTERMEDIATE_ROUTES = frozenset(route.value for route in INTERMEDIATE)


@dataclass(frozen=True)
class Hop:
    """One manifest as the allocation sees it: who sent what to whom, how much arrived, and what it drew from."""

    id: int
    shipper_id: int
    receiver_id: int
    category_code: str
    route: str
    dispatched_kg: int
    received_kg: int | None  # None while not received (or when refused)
    dispatched_at: datetime
    # Lots drawn: (source id, kilograms or None for pro rata). Empty: original waste, or an unlinked forwarding.
    sources: tuple[tuple[int, int | None], ...] = ()

    @property
    def intermediate(self) -> bool:
        """Whether this manifest delivers a lot to an intermediary rather than to a final step."""
        return self.route in INTERMEDIATE_ROUTES


@dataclass(frozen=True)
class Share:
    """Kilograms of one original manifest found in one manifest, and where they are."""

    manifest_id: int
    origin_id: int
    placement: Placement
    kg: int


@dataclass
class Allocation:
    """The shares of a set of chains, the draws each forwarding made, and the forwardings that named no source."""

    shares: list[Share] = field(default_factory=list)
    draws: dict[int, dict[int, int]] = field(default_factory=dict)  # forwarding -> source -> kilograms drawn
    unlinked: set[int] = field(default_factory=set)

    def by_origin(self, placement: Placement | None = None) -> dict[int, int]:
        """Kilograms per original manifest (at one placement, or everywhere)."""
        out: dict[int, int] = {}
        for share in self.shares:
            if placement is None or share.placement is placement:
                out[share.origin_id] = out.get(share.origin_id, 0) + share.kg
        return out


def apportion(total: int, weights: Mapping[int, int]) -> dict[int, int]:
    """`total` split over keys in proportion to integer weights, by largest remainder (ties to the smaller key)."""
    whole = sum(weights.values())
    if total <= 0 or whole <= 0:
        return dict.fromkeys(weights, 0)
    exact = {key: Fraction(total * w, whole) for key, w in weights.items()}
    out = {key: int(value) for key, value in exact.items()}
    left = total - sum(out.values())
    for key in sorted(exact, key=lambda k: (-(exact[k] - out[k]), k))[:left]:
        out[key] += 1
    return out


def pro_rata_draws(hop: Hop, received: Mapping[int, int]) -> dict[int, int]:
    """The kilograms a forwarding draws from each source: as given, or its weight split over the sources' receipts."""
    given = {source: kg for source, kg in hop.sources if kg is not None}
    open_ = [source for source, kg in hop.sources if kg is None]
    draws = dict(given)
    if open_:
        rest = max(hop.dispatched_kg - sum(given.values()), 0)
        draws.update(apportion(rest, {source: received.get(source, 0) for source in open_}))
    return draws


def allocate(hops: Iterable[Hop]) -> Allocation:
    """Allocate every manifest of a closed set of chains to its original manifests (see the module's text)."""
    ordered = _in_order(list(hops))
    received = {hop.id: hop.received_kg or 0 for hop in ordered}
    held: dict[int, dict[int, int]] = {}  # lot (intermediate manifest) -> origin -> kilograms still held
    stock: dict[tuple[int, str], list[int]] = {}  # (intermediary, category) -> its lots, in the order they came
    result = Allocation()
    for hop in ordered:
        composition = _composition(hop, received, held, stock.get((hop.shipper_id, hop.category_code), []), result)
        arrived = hop.received_kg
        if arrived is None:
            _place(result, hop.id, composition, Placement.transit)
            continue
        # Weighed on arrival: a loss on the road leaves the chain; a gain makes no waste that came from nobody.
        carried = sum(composition.values())
        if arrived < carried:
            composition = apportion(arrived, composition)
        if hop.intermediate:
            held[hop.id] = dict(composition)
            stock.setdefault((hop.receiver_id, hop.category_code), []).append(hop.id)
        else:
            _place(result, hop.id, composition, Placement.final)
    for lot, composition in held.items():
        _place(result, lot, composition, Placement.held)
    return result


def _in_order(hops: list[Hop]) -> list[Hop]:
    """By dispatch time, but every lot before the forwardings that name it (a clock may be wrong; the chain is not)."""
    by_id = {hop.id: hop for hop in hops}
    waiting = {hop.id: {s for s, _ in hop.sources if s in by_id} for hop in hops}
    users: dict[int, list[int]] = {}
    for hop in hops:
        for source in waiting[hop.id]:
            users.setdefault(source, []).append(hop.id)
    ready = [(hop.dispatched_at, hop.id) for hop in hops if not waiting[hop.id]]
    heapq.heapify(ready)
    out: list[Hop] = []
    while ready:
        _, ident = heapq.heappop(ready)
        out.append(by_id[ident])
        for user in users.get(ident, ()):
            waiting[user].discard(ident)
            if not waiting[user]:
                heapq.heappush(ready, (by_id[user].dispatched_at, user))
    if len(out) != len(hops):
        raise InvalidInput("waste.chain.cycle", field="sources")
    return out


def _composition(
    hop: Hop,
    received: Mapping[int, int],
    held: dict[int, dict[int, int]],
    stock: list[int],
    result: Allocation,
) -> dict[int, int]:
    if hop.sources:
        draws = pro_rata_draws(hop, received)
    else:
        # No source named: from the shipper's lots of this category still held when it left, if it holds any.
        lots = [lot for lot in stock if sum(held[lot].values()) > 0]
        if not lots:
            return {hop.id: hop.received_kg if hop.received_kg is not None else hop.dispatched_kg}
        result.unlinked.add(hop.id)
        available = {lot: sum(held[lot].values()) for lot in lots}
        wanted = min(hop.dispatched_kg, sum(available.values()))
        draws = apportion(wanted, available)
        own = hop.dispatched_kg - wanted
        composition = _draw(draws, held)
        result.draws[hop.id] = draws
        if own > 0:
            # More left than the lots held: the rest is the intermediary's own waste, and it is its origin.
            composition[hop.id] = composition.get(hop.id, 0) + own
        return composition
    # What the writer refused cannot be stored; a lot corrected downwards afterwards gives what it still holds.
    draws = {source: min(kg, sum(held.get(source, {}).values())) for source, kg in draws.items()}
    result.draws[hop.id] = draws
    return _draw(draws, held)


def _draw(draws: Mapping[int, int], held: dict[int, dict[int, int]]) -> dict[int, int]:
    composition: dict[int, int] = {}
    for source, kg in draws.items():
        taken = apportion(kg, held[source])
        for origin, part in taken.items():
            if part:
                held[source][origin] -= part
                composition[origin] = composition.get(origin, 0) + part
    return composition


def _place(result: Allocation, manifest_id: int, composition: Mapping[int, int], placement: Placement) -> None:
    result.shares.extend(
        Share(manifest_id, origin, placement, kg) for origin, kg in sorted(composition.items()) if kg > 0
    )


@dataclass(frozen=True)
class Named:
    """A lot as a forwarding names it: the reference as given, the lot it found (None: none), kilograms or pro rata."""

    given: str
    lot: Hop | None
    kg: int | None
    known_as: str | None = None  # how the lot is named in a refusal once found (its number); else as given


def check_named(hop: Hop, named: Sequence[Named], drawn_before: Mapping[int, int]) -> dict[int, int]:
    """Refuse the lots a forwarding names (none such, itself, twice, or what check_sources refuses), naming the lot;
    the kilograms drawn from each. The one check of the API's writer and of the importer."""
    names: dict[int, str] = {}
    pairs: list[tuple[int, int | None]] = []
    for entry in named:
        lot = entry.lot
        if lot is not None and lot.id == hop.id:
            raise InvalidInput("waste.chain.source_itself", field="sources", source=entry.given)
        if lot is None or lot.receiver_id != hop.shipper_id:
            raise InvalidInput("waste.chain.no_source", field="sources", source=entry.given)
        name = entry.known_as or entry.given
        if lot.id in names:
            raise InvalidInput("waste.chain.source_twice", field="sources", source=name)
        names[lot.id] = name
        pairs.append((lot.id, entry.kg))
    lots = {entry.lot.id: entry.lot for entry in named if entry.lot is not None}
    try:
        return check_sources(replace(hop, sources=tuple(pairs)), list(lots.values()), drawn_before)
    except InvalidInput as exc:
        ident = exc.params.get("source")
        if ident in names:
            exc.params["source"] = names[ident]
        raise


def check_sources(hop: Hop, sources: Sequence[Hop], drawn_before: Mapping[int, int]) -> dict[int, int]:
    """Refuse sources a forwarding cannot draw from, naming the source: not a lot of its shipper, another category,
    not received, or drawn beyond what it received; the kilograms drawn from each."""
    for source in sources:
        if not source.intermediate:
            route = Term(f"waste.flag.route.{source.route}")  # in the reader's words
            raise InvalidInput("waste.chain.source_not_a_lot", field="sources", source=source.id, route=route)
        if source.receiver_id != hop.shipper_id:
            raise InvalidInput("waste.chain.source_elsewhere", field="sources", source=source.id)
        if source.category_code != hop.category_code:
            raise InvalidInput(
                "waste.chain.source_category",
                field="sources",
                source=source.id,
                category=source.category_code,
                expected=hop.category_code,
            )
        if source.received_kg is None:
            raise InvalidInput("waste.chain.source_not_received", field="sources", source=source.id)
    received = {source.id: source.received_kg or 0 for source in sources}
    draws = pro_rata_draws(hop, received)
    for source_id, kg in draws.items():
        left = received[source_id] - drawn_before.get(source_id, 0)
        if kg > left:
            raise InvalidInput(
                "waste.chain.overdrawn",
                field="sources",
                manifest=hop.id,
                source=source_id,
                kg=kg,
                left=left,
                kg_t=kg_as_tonnes(kg),
                left_t=kg_as_tonnes(left),
            )
    return draws


# ---------------------------------------------------------------------------------------------------------------
# Kept on write: the draws and shares of the chains a change touches, recomputed from their rows


MOVED = (ManifestStatus.dispatched.value, ManifestStatus.received.value, ManifestStatus.corrected.value)
ARRIVED = (ManifestStatus.received.value, ManifestStatus.corrected.value)
LOT_ROUTES = tuple(sorted(route.value for route in INTERMEDIATE))


CHUNK = 5000  # ids per IN list: SQLite's limit on bound parameters is far above it, and plans stay simple


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    listed = sorted(ids)
    for start in range(0, len(listed), CHUNK):
        yield listed[start : start + CHUNK]


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


def _kg(tonnes: Decimal | None) -> int | None:
    return None if tonnes is None else int(tonnes * 1000)


def _related(session: Session, ids: set[int]) -> set[int]:
    """The manifests whose allocation can change with these: the whole chains they belong to."""
    m = Manifest
    found = set(ids)
    frontier = set(ids)
    seen_pairs: set[tuple[int, str]] = set()
    while frontier:
        linked: set[int] = set()
        rows: list[Any] = []
        for batch in _chunks(frontier):
            for t in (_table(ManifestSource).c, _table(ManifestDraw).c):
                pairs_of = session.execute(
                    sa_select(t.manifest_id, t.source_id).where(or_(t.manifest_id.in_(batch), t.source_id.in_(batch)))
                )
                for a, b in pairs_of:
                    linked.update((a, b))
            rows += session.execute(
                sa_select(col(m.shipper_id), col(m.receiver_id), col(m.category_code), col(m.route)).where(
                    col(m.id).in_(batch)
                )
            ).all()
        # A forwarding that names no lot draws on whatever its shipper held of that category: where an intermediary
        # sent any such, its lots of the category and everything it sent of it draw on one another. Forwardings that
        # name their lots are linked above, so an intermediary that always names them needs no more than that.
        pairs = {(r.receiver_id, r.category_code) for r in rows if r.route in LOT_ROUTES}
        pairs |= {(r.shipper_id, r.category_code) for r in rows}
        pairs -= seen_pairs
        if pairs:
            seen_pairs |= pairs
            ordered = sorted(pairs)
            lots: list[Any] = []
            for start in range(0, len(ordered), CHUNK):
                lots += session.execute(
                    sa_select(col(m.id), col(m.receiver_id), col(m.category_code)).where(
                        tuple_(col(m.receiver_id), col(m.category_code)).in_(ordered[start : start + CHUNK]),
                        col(m.route).in_(LOT_ROUTES),
                    )
                ).all()
            holders = sorted({(r.receiver_id, r.category_code) for r in lots})
            source = _table(ManifestSource).c
            unnamed: list[Any] = []
            for start in range(0, len(holders), CHUNK):
                unnamed += session.execute(
                    sa_select(col(m.id), col(m.shipper_id), col(m.category_code)).where(
                        tuple_(col(m.shipper_id), col(m.category_code)).in_(holders[start : start + CHUNK]),
                        ~sa_select(source.manifest_id).where(source.manifest_id == col(m.id)).exists(),
                    )
                ).all()
            drawing = {(r.shipper_id, r.category_code) for r in unnamed}
            linked.update(r.id for r in lots if (r.receiver_id, r.category_code) in drawing)
            linked.update(r.id for r in unnamed)
        frontier = linked - found
        found |= frontier
    return found


def _hops(session: Session, ids: set[int] | None) -> tuple[list[Hop], dict[int, Any]]:
    """The hops of these manifests (of every manifest for None) that moved, with the rows they were read from."""
    m = Manifest
    columns = sa_select(
        col(m.id),
        col(m.shipper_id),
        col(m.receiver_id),
        col(m.category_code),
        col(m.route),
        col(m.status),
        col(m.year),
        col(m.weight_dispatched_t),
        col(m.weight_received_t),
        col(m.dispatched_at),
        col(m.created_at),
    ).where(col(m.status).in_(MOVED))
    rows: list[Any] = []
    s = _table(ManifestSource).c
    pairs: list[Any] = []
    if ids is None:
        rows = list(session.execute(columns))
        pairs = list(session.execute(sa_select(s.manifest_id, s.source_id, s.weight_t)))
    else:
        for batch in _chunks(ids):
            rows += session.execute(columns.where(col(m.id).in_(batch))).all()
        for batch in _chunks({r.id for r in rows}):
            pairs += session.execute(
                sa_select(s.manifest_id, s.source_id, s.weight_t).where(s.manifest_id.in_(batch))
            ).all()
    moving = {r.id for r in rows}
    sources: dict[int, list[tuple[int, int | None]]] = {}
    for manifest_id, source_id, weight in pairs:
        if manifest_id in moving and source_id in moving:
            sources.setdefault(manifest_id, []).append((source_id, _kg(weight)))
    hops = [
        hop_of(r, sorted(sources.get(r.id, ())))
        for r in rows
        # A corrected refusal arrived nowhere: it moves nothing.
        if not (str(r.status) in ARRIVED and r.weight_received_t is None)
    ]
    return hops, {r.id: r for r in rows}


def reallocate(session: Session, manifest_ids: Iterable[int]) -> Allocation:
    """Recompute the draws and shares of every chain these manifests belong to (one writer calls this)."""
    wanted = {i for i in manifest_ids if i}
    if wanted:
        serialise_writers(session)  # chains are read and rewritten whole: one transaction at a time
    ids = _related(session, wanted)
    if not ids:
        return Allocation()
    hops, rows = _hops(session, ids)
    result = allocate(hops)
    _store(session, ids, result, rows)
    return result


def _store(session: Session, ids: set[int] | None, result: Allocation, rows: dict[int, Any]) -> None:
    """Replace the draws and shares of these manifests (of all for None) with the ones allocated, and the
    summaries with them (flows/waste/summaries.py: what the old shares added is taken back, the new ones added)."""
    taken_back = summaries.before(session, ids) if ids is not None else None
    for t in (_table(ManifestShare), _table(ManifestDraw)):
        if ids is None:
            session.execute(delete(t))
        for batch in _chunks(ids or ()):
            session.execute(delete(t).where(t.c.manifest_id.in_(batch)))
    shares = [
        {
            "manifest_id": share.manifest_id,
            "origin_id": share.origin_id,
            "placement": share.placement.value,
            "kg": share.kg,
            "origin_shipper_id": rows[share.origin_id].shipper_id,
            "category_code": rows[share.origin_id].category_code,
            "origin_year": rows[share.origin_id].year,
            # The path's key for summary_path; the route too, which the summaries' recount sets again on final rows.
            "first_receiver_id": rows[share.origin_id].receiver_id,
            "first_route": summaries.route_text(rows[share.origin_id].route),
            "shipper_id": rows[share.manifest_id].shipper_id,
            "receiver_id": rows[share.manifest_id].receiver_id,
            "route": summaries.route_text(rows[share.manifest_id].route),
        }
        for share in result.shares
    ]
    draws = [
        {"manifest_id": forwarding, "source_id": source, "kg": kg, "named": forwarding not in result.unlinked}
        for forwarding, taken in result.draws.items()
        for source, kg in taken.items()
    ]
    for table, values in ((_table(ManifestShare), shares), (_table(ManifestDraw), draws)):
        for start in range(0, len(values), 20_000):
            session.execute(insert(table), values[start : start + 20_000])
    if taken_back is None:
        summaries.rebuild(session)
    else:
        summaries.after(session, ids or (), taken_back)


def reallocate_all(session: Session) -> int:
    """Recompute every chain at once (after an upgrade, a bulk load or a repair); returns the manifests allocated."""
    hops, rows = _hops(session, None)
    _store(session, None, allocate(hops), rows)
    return len(hops)


def drawn_from(session: Session, source_ids: Sequence[int], *, besides: int | None = None) -> dict[int, int]:
    """Kilograms already drawn from each lot by other forwardings."""
    d = _table(ManifestDraw).c
    query = sa_select(d.source_id, func.sum(d.kg)).where(d.source_id.in_(list(source_ids))).group_by(d.source_id)
    if besides is not None:
        query = query.where(d.manifest_id != besides)
    return {int(source): int(kg) for source, kg in session.execute(query)}


def hop_of(row: Manifest | Any, sources: Sequence[tuple[int, int | None]] = ()) -> Hop:
    """A stored manifest (or a row with its columns) as the allocation sees it."""
    arrived = str(row.status) in ARRIVED
    return Hop(
        id=row.id or 0,
        shipper_id=row.shipper_id,
        receiver_id=row.receiver_id,
        category_code=row.category_code,
        route=str(row.route),
        dispatched_kg=_kg(row.weight_dispatched_t) or 0,
        received_kg=_kg(row.weight_received_t) if arrived else None,
        dispatched_at=stored_utc(row.dispatched_at or row.created_at),
        sources=tuple(sources),
    )


# ---------------------------------------------------------------------------------------------------------------
# A manifest's chain, backward (what went into it) and forward (where its tonnes ended)


class ChainLink(BaseModel):
    """A manifest linked to the one asked about, with the tonnes that link carries."""

    id: int
    number: str
    shipper_id: int
    receiver_id: int
    route: str
    status: str
    tonnes: Tonnes
    placement: Placement | None = None  # for a share: where those tonnes are now
    named: bool | None = None  # for a draw: named as a source, or drawn without being named


class ManifestChain(BaseModel):
    """Where a manifest's tonnes came from and where they went, hop by hop and to the end."""

    id: int
    number: str
    drew_from: list[ChainLink]  # the lots it drew from (one hop back)
    made_of: list[ChainLink]  # the first manifests its tonnes came from, at the end of every path back
    drawn_by: list[ChainLink]  # the manifests that drew from it (one hop on)
    ended_in: list[ChainLink]  # where the tonnes of this manifest are now, if it is a first manifest
    final_t: Tonnes
    held_t: Tonnes
    transit_t: Tonnes


def _links(session: Session, pairs: Sequence[tuple[int, int, Placement | None, bool | None]]) -> list[ChainLink]:
    m = Manifest
    ids = sorted({ident for ident, _, _, _ in pairs})
    rows = {
        r.id: r
        for r in session.execute(
            sa_select(
                col(m.id), col(m.number), col(m.shipper_id), col(m.receiver_id), col(m.route), col(m.status)
            ).where(col(m.id).in_(ids))
        )
    }
    return [
        ChainLink(
            id=ident,
            number=rows[ident].number,
            shipper_id=rows[ident].shipper_id,
            receiver_id=rows[ident].receiver_id,
            route=str(rows[ident].route),
            status=str(rows[ident].status),
            tonnes=kg_as_tonnes(kg),
            placement=placement,
            named=named,
        )
        for ident, kg, placement, named in pairs
        if ident in rows
    ]


def chain_of(session: Session, manifest: Manifest) -> ManifestChain:
    """The chain of a manifest the caller may read (the caller checks that)."""
    ident = manifest.id or 0
    d, s = _table(ManifestDraw).c, _table(ManifestShare).c
    drew = session.execute(sa_select(d.source_id, d.kg, d.named).where(d.manifest_id == ident)).all()
    drawn = session.execute(sa_select(d.manifest_id, d.kg, d.named).where(d.source_id == ident)).all()
    made = session.execute(
        sa_select(s.origin_id, s.kg, s.placement).where(s.manifest_id == ident).order_by(s.origin_id)
    ).all()
    ended = session.execute(
        sa_select(s.manifest_id, s.kg, s.placement).where(s.origin_id == ident).order_by(s.manifest_id)
    ).all()
    totals = dict.fromkeys(Placement, 0)
    for _, kg, placement in ended:
        totals[Placement(placement)] += int(kg)
    return ManifestChain(
        id=ident,
        number=manifest.number,
        drew_from=_links(session, [(r[0], int(r[1]), None, bool(r[2])) for r in drew]),
        made_of=_links(session, [(r[0], int(r[1]), Placement(r[2]), None) for r in made]),
        drawn_by=_links(session, [(r[0], int(r[1]), None, bool(r[2])) for r in drawn]),
        ended_in=_links(session, [(r[0], int(r[1]), Placement(r[2]), None) for r in ended]),
        final_t=kg_as_tonnes(totals[Placement.final]),
        held_t=kg_as_tonnes(totals[Placement.held]),
        transit_t=kg_as_tonnes(totals[Placement.transit]),
    )


# ---------------------------------------------------------------------------------------------------------------
# Kept with every write of a manifest, whichever path wrote it


def _after_flush(session: Session, _context: Any) -> None:
    # Any manifest added or changed in this flush (a step, a correction, a row written by hand) takes its chains
    # along in the same transaction; bulk inserts outside the ORM (imports, the demo) call reallocate themselves.
    touched = [obj.id for obj in (*session.new, *session.dirty) if isinstance(obj, Manifest) and obj.id is not None]
    if touched:
        reallocate(session, touched)


event.listen(Session, "after_flush", _after_flush)

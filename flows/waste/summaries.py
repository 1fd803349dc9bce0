"""Summaries of the bottom-up figure kept on write, in the transaction of every write that changes them.

Two tables (models/summaries.py): kilograms per (year, generator, category, final route), and per (year, region cell,
category) over the generators of the cell. Every manifest_share row at placement `final` records what it adds to
them (its manifest's route and whether it counts toward the rate); a write takes back what the rows it replaces or
recounts added, and adds what the new ones add, as deltas (`kg = kg + excluded.kg`), so that writers touching
different rows commute. The writers: chains.py (every change of shares: receipt, dispatch, rejection, correction,
forwarding, import, reallocation), licence changes and enterprise moves (a flush listener below, which also covers
bulk updates when the caller hands it the ids). `check` recomputes both tables from the base rows with the reference
query of rates.py and names every difference; `rebuild` replaces them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, bindparam, case, delete, event, func, inspect, or_, tuple_, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from flows.access.trail import serialise_writers
from flows.waste.rates import SHARES, manifest_utilised
from models import Enterprise, Licence, Manifest, SummaryCounty, SummaryGenerator, SummaryPath
from models.enums import Placement

CHUNK = 5000  # ids per IN list, as in chains.py
FINAL = Placement.final.value

GenKey = tuple[int, int, str, str]  # year, generator, category, route
Cell = tuple[str, str, str]  # province, prefecture, county adcodes ('' for none)
CountyKey = tuple[int, str, str, str, str]  # year, province, prefecture, county, category
Kg = tuple[int, int]  # utilised, final
PathKey = tuple[int, str, str, bool, int, int, int, int, str, str]  # as PATH_KEYS


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


GEN = _table(SummaryGenerator)
COUNTY = _table(SummaryCounty)
PATH = _table(SummaryPath)
# summary_path's key, in the order of PathKey; the shares carry each of these columns but `year` and `straight`.
PATH_KEYS = (
    "year",
    "category_code",
    "placement",
    "straight",
    "generator_id",
    "first_receiver_id",
    "shipper_id",
    "receiver_id",
    "first_route",
    "route",
)
ON_A_PATH = (Placement.final.value, Placement.held.value)  # the Sankey leaves tonnes on the road out
CELL_COLUMNS = ("province_adcode", "prefecture_adcode", "county_adcode")


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    listed = sorted(set(ids))
    for start in range(0, len(listed), CHUNK):
        yield listed[start : start + CHUNK]


class Delta:
    """Kilograms to add per generator key and per path (negative to take back), and the first manifests whose paths
    were taken back."""

    def __init__(self) -> None:
        self.utilised: Counter[GenKey] = Counter()
        self.final: Counter[GenKey] = Counter()
        self.path_kg: Counter[PathKey] = Counter()
        self.path_utilised: Counter[PathKey] = Counter()
        self.path_origins: Counter[PathKey] = Counter()
        self.origins: set[int] = set()

    def add_paths(self, rows: Iterable[Any], sign: int, besides: set[int] | frozenset[int] = frozenset()) -> None:
        """Add or take back the paths of share rows (origin, manifest, kg, counted, then the path's columns),
        leaving out rows in the manifests `besides`; a first manifest counts once on each path it has kilograms on."""
        on_path: dict[PathKey, set[int]] = {}
        for origin, manifest, kg, counted, year, category, placement, *parties in rows:
            if manifest in besides:
                continue
            key = _path_key((year, category, placement, origin == manifest, *parties))
            self.path_kg[key] += sign * int(kg)
            if counted and key[2] == FINAL:
                self.path_utilised[key] += sign * int(kg)
            on_path.setdefault(key, set()).add(int(origin))
        for key, origins in on_path.items():
            self.path_origins[key] += sign * len(origins)

    def path_items(self) -> list[tuple[PathKey, tuple[int, int, int]]]:
        """The paths whose figures change, with the change (kg, utilised kg, first manifests)."""
        keys = sorted(set(self.path_kg) | set(self.path_utilised) | set(self.path_origins))
        out = [(k, (self.path_kg[k], self.path_utilised[k], self.path_origins[k])) for k in keys]
        return [(k, v) for k, v in out if any(v)]

    def add(self, rows: Iterable[Any], sign: int) -> None:
        """Add (sign 1) or take back (sign -1) rows of (year, generator, category, route, utilised, final)."""
        for year, generator, category, route, utilised, final in rows:
            key = (int(year), int(generator), str(category), str(route))
            self.utilised[key] += sign * int(utilised or 0)
            self.final[key] += sign * int(final or 0)

    def items(self) -> list[tuple[GenKey, Kg]]:
        """The keys whose kilograms change, with the change."""
        keys = sorted(set(self.utilised) | set(self.final))
        return [(key, (self.utilised[key], self.final[key])) for key in keys if self.utilised[key] or self.final[key]]


def _contributions(session: Session, ids: Sequence[int]) -> list[Any]:
    """What the final shares of these manifests add to the summaries now, by generator key."""
    share = SHARES.c
    query = (
        sa_select(
            share.origin_year,
            share.origin_shipper_id,
            share.category_code,
            share.route,
            func.sum(case((share.counted, share.kg), else_=0)),
            func.sum(share.kg),
        )
        .where(share.placement == FINAL, share.manifest_id.in_(list(ids)))
        .group_by(share.origin_year, share.origin_shipper_id, share.category_code, share.route)
    )
    return list(session.execute(query))


def _manifest_rows(session: Session, columns: Sequence[Any], ids: Iterable[int] | None) -> Iterator[Any]:
    """Columns of these manifests (of all for None), read from the manifests alone: on Citus they live on the
    shards and the shares on the coordinator, and no statement may write one from the other."""
    if ids is None:
        yield from session.execute(sa_select(col(Manifest.id), *columns))
        return
    for batch in _chunks(ids):
        yield from session.execute(sa_select(col(Manifest.id), *columns).where(col(Manifest.id).in_(batch)))


def _write_changed(session: Session, rows: list[dict[str, Any]], keys: Sequence[str]) -> None:
    """Update share rows by the given key columns (bound as b_<name>), in executemany batches."""
    if not rows:
        return
    share = SHARES.c
    values: dict[str, Any] = {name: bindparam(name) for name in rows[0] if not name.startswith("b_")}
    stmt = (
        update(SHARES)
        .where(*(share[k] == bindparam(f"b_{k}") for k in keys))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    for start in range(0, len(rows), 20_000):
        session.execute(stmt, rows[start : start + 20_000])


Facts = tuple[int, int, str, bool]  # a manifest's shipper, receiver, route and whether it counts toward the rate


def _facts(session: Session, ids: Iterable[int] | None) -> dict[int, Facts]:
    """What the shares copy from these manifests (from all for None), with rates.manifest_utilised."""
    m = Manifest
    columns = (col(m.shipper_id), col(m.receiver_id), col(m.route), manifest_utilised())
    return {
        int(ident): (int(shipper), int(receiver), route_text(route), bool(utilised))
        for ident, shipper, receiver, route, utilised in _manifest_rows(session, columns, ids)
    }


def _recount(session: Session, ids: Sequence[int]) -> None:
    """Set the route and counted flag of the final shares in these manifests from the manifests, their receivers'
    licences and rates' rule."""
    share = SHARES.c
    now = _facts(session, ids)
    stored = sa_select(share.manifest_id, share.route, share.counted).where(share.placement == FINAL).distinct()
    changed = [
        {"b_manifest_id": int(m), "b_placement": FINAL, "route": now[int(m)][2], "counted": now[int(m)][3]}
        for batch in _chunks(ids)
        for m, route, counted in session.execute(stored.where(share.manifest_id.in_(batch)))
        if int(m) in now and (str(route), bool(counted)) != now[int(m)][2:]
    ]
    _write_changed(session, changed, ("manifest_id", "placement"))


def _origins_of(session: Session, ids: Iterable[int]) -> set[int]:
    """The first manifests with kilograms on a path (final or held) in these manifests."""
    share = SHARES.c
    out: set[int] = set()
    for batch in _chunks(ids):
        query = sa_select(share.origin_id).where(share.manifest_id.in_(batch), share.placement.in_(ON_A_PATH))
        out.update(int(i) for (i,) in session.execute(query.distinct()))
    return out


def _path_rows(session: Session, origins: Sequence[int]) -> list[Any]:
    """Every share row on a path of these first manifests, wherever it is, with its path's columns."""
    share = SHARES.c
    query = sa_select(
        share.origin_id,
        share.manifest_id,
        share.kg,
        share.counted,
        share.origin_year,
        share.category_code,
        share.placement,
        share.origin_shipper_id,
        share.first_receiver_id,
        share.shipper_id,
        share.receiver_id,
        share.first_route,
        share.route,
    ).where(share.origin_id.in_(list(origins)), share.placement.in_(ON_A_PATH))
    return list(session.execute(query))


def before(session: Session, ids: Iterable[int]) -> Delta:
    """What the shares of these manifests add now, taken back: call before replacing them. The paths are taken back
    whole for every first manifest with kilograms in them, since a path counts each first manifest once."""
    delta = Delta()
    listed = sorted(set(ids))
    for batch in _chunks(listed):
        delta.add(_contributions(session, batch), -1)
    delta.origins = _origins_of(session, listed)
    for batch in _chunks(delta.origins):
        delta.add_paths(_path_rows(session, batch), -1)
    return delta


def after(session: Session, ids: Iterable[int], delta: Delta) -> None:
    """Count the replaced shares of these manifests and apply what changed since `before`."""
    listed = sorted(set(ids))
    for batch in _chunks(listed):
        _recount(session, batch)
        delta.add(_contributions(session, batch), 1)
    now = _origins_of(session, listed)
    # First manifests new to these manifests had their other paths before too: take those back as they were.
    replaced = set(listed)
    for batch in _chunks(now - delta.origins):
        delta.add_paths(_path_rows(session, batch), -1, besides=replaced)
    for batch in _chunks(now | delta.origins):
        delta.add_paths(_path_rows(session, batch), 1)
    apply(session, delta)


def recount(session: Session, ids: Iterable[int]) -> None:
    """Recount the final shares of these manifests (their receiver's licences changed) and apply the difference."""
    listed = sorted(set(ids))
    if listed:
        after(session, listed, before(session, listed))


def _upsert(
    session: Session,
    table: Table,
    keys: Sequence[str],
    rows: list[dict[str, Any]],
    added: Sequence[str] = ("utilised_kg", "final_kg"),
) -> None:
    """Add the rows' figures to the stored ones, inserting rows not stored yet (one statement on both databases)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    stmt: Any = (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + stmt.excluded[name] for name in added},
    )
    session.execute(stmt)


def _cells(session: Session, generators: Iterable[int]) -> dict[int, Cell]:
    out: dict[int, Cell] = {}
    e = Enterprise
    for batch in _chunks(generators):
        query = sa_select(col(e.id), col(e.province_adcode), col(e.prefecture_adcode), col(e.county_adcode)).where(
            col(e.id).in_(batch)
        )
        for ident, province, prefecture, county in session.execute(query):
            out[int(ident)] = (province or "", prefecture or "", county or "")
    return out


GEN_KEYS = ("year", "generator_id", "category_code", "route")
COUNTY_KEYS = ("year", "province_adcode", "prefecture_adcode", "county_adcode", "category_code")


PATH_FIGURES = ("kg", "utilised_kg", "origins")


def _apply_paths(session: Session, delta: Delta) -> None:
    changes = delta.path_items()
    rows = [
        {**dict(zip(PATH_KEYS, key, strict=True)), **dict(zip(PATH_FIGURES, figures, strict=True))}
        for key, figures in changes
    ]
    for start in range(0, len(rows), CHUNK):
        _upsert(session, PATH, PATH_KEYS, rows[start : start + CHUNK], PATH_FIGURES)
    # A path nothing is on any more goes, so that corrections and moves leave no empty rows behind.
    p = PATH.c
    keys = [key for key, _ in changes]
    for start in range(0, len(keys), 500):
        session.execute(
            delete(PATH).where(
                tuple_(*(p[name] for name in PATH_KEYS)).in_(keys[start : start + 500]),
                p.kg == 0,
                p.utilised_kg == 0,
                p.origins == 0,
            )
        )


def apply(session: Session, delta: Delta) -> None:
    """Add a delta to the three tables, under the generators' regions of now."""
    _apply_paths(session, delta)
    changes = delta.items()
    if not changes:
        return
    generators = {key[1] for key, _ in changes}
    follow(session, generators)
    cells = _cells(session, generators)
    county: Counter[CountyKey] = Counter()
    county_final: Counter[CountyKey] = Counter()
    gen_rows = []
    for (year, generator, category, route), (utilised, final) in changes:
        cell = cells.get(generator, ("", "", ""))
        gen_rows.append(
            {
                "year": year,
                "generator_id": generator,
                "category_code": category,
                "route": route,
                **dict(zip(CELL_COLUMNS, cell, strict=True)),
                "utilised_kg": utilised,
                "final_kg": final,
            }
        )
        county[(year, *cell, category)] += utilised
        county_final[(year, *cell, category)] += final
    for start in range(0, len(gen_rows), CHUNK):
        _upsert(session, GEN, GEN_KEYS, gen_rows[start : start + CHUNK])
    _upsert_county(session, county, county_final)


def _upsert_county(session: Session, utilised: Counter[CountyKey], final: Counter[CountyKey]) -> None:
    rows = [
        {**dict(zip(COUNTY_KEYS, key, strict=True)), "utilised_kg": utilised[key], "final_kg": final[key]}
        for key in sorted(set(utilised) | set(final))
        if utilised[key] or final[key]
    ]
    for start in range(0, len(rows), CHUNK):
        _upsert(session, COUNTY, COUNTY_KEYS, rows[start : start + CHUNK])


def follow(session: Session, generators: Iterable[int]) -> None:
    """Move the county kilograms of generators whose region changed since they were added to where they are now."""
    serialise_writers(session)  # a move and a write of the same generator must not interleave
    g, e = GEN.c, Enterprise
    moved: set[int] = set()
    utilised: Counter[CountyKey] = Counter()
    final: Counter[CountyKey] = Counter()
    now = (
        func.coalesce(col(e.province_adcode), ""),
        func.coalesce(col(e.prefecture_adcode), ""),
        func.coalesce(col(e.county_adcode), ""),
    )
    for batch in _chunks(generators):
        query = (
            sa_select(
                g.generator_id, g.year, g.category_code, *(g[c] for c in CELL_COLUMNS), *now, g.utilised_kg, g.final_kg
            )
            .join(Enterprise, col(e.id) == g.generator_id)
            .where(
                g.generator_id.in_(batch),
                or_(*(g[c] != value for c, value in zip(CELL_COLUMNS, now, strict=True))),
            )
        )
        for generator, year, category, p0, f0, c0, p1, f1, c1, u, f in session.execute(query):
            moved.add(int(generator))
            utilised[(int(year), p0, f0, c0, category)] -= int(u)
            final[(int(year), p0, f0, c0, category)] -= int(f)
            utilised[(int(year), p1, f1, c1, category)] += int(u)
            final[(int(year), p1, f1, c1, category)] += int(f)
    if not moved:
        return
    _upsert_county(session, utilised, final)
    for batch in _chunks(moved):
        cells = _cells(session, batch)
        for generator in batch:
            session.execute(
                update(GEN)
                .where(g.generator_id == generator)
                .values(**dict(zip(CELL_COLUMNS, cells.get(generator, ("", "", "")), strict=True)))
            )


def licence_changed(session: Session, pairs: Iterable[tuple[int, str]]) -> None:
    """Recount the final shares of every manifest an enterprise received in a category whose licences changed."""
    listed = sorted(set(pairs))
    if not listed:
        return
    serialise_writers(session)  # a receipt counted under the old licences must not commit after this recount
    m = Manifest
    received = [
        int(i)
        for (i,) in session.execute(
            sa_select(col(m.id)).where(
                or_(*(and_(col(m.receiver_id) == e, col(m.category_code) == c) for e, c in listed))
            )
        )
    ]
    # Of those, the ones with shares: read apart, since on Citus the manifests and the shares live apart.
    share = SHARES.c
    ids = [
        int(i)
        for batch in _chunks(received)
        for (i,) in session.execute(sa_select(share.manifest_id).where(share.manifest_id.in_(batch)).distinct())
    ]
    recount(session, ids)


# ---------------------------------------------------------------------------------------------------------------
# Rebuild and check, from the base rows


def rebuild(session: Session) -> None:
    """Recount every final share and replace both tables with sums of the shares (after a bulk load or a repair)."""
    serialise_writers(session)
    _rekey(session)
    session.execute(delete(COUNTY))
    session.execute(delete(GEN))
    share, e = SHARES.c, Enterprise
    cell = (
        func.coalesce(col(e.province_adcode), ""),
        func.coalesce(col(e.prefecture_adcode), ""),
        func.coalesce(col(e.county_adcode), ""),
    )
    keys = (share.origin_year, share.origin_shipper_id, share.category_code, share.route)
    select_gen = (
        sa_select(*keys, *cell, func.sum(case((share.counted, share.kg), else_=0)), func.sum(share.kg))
        .join(Enterprise, col(e.id) == share.origin_shipper_id)
        .where(share.placement == FINAL)
        .group_by(*keys, *cell)
    )
    columns = [*GEN_KEYS, *CELL_COLUMNS, "utilised_kg", "final_kg"]
    session.execute(GEN.insert().from_select(columns, select_gen))
    g = GEN.c
    select_county = sa_select(*(g[c] for c in COUNTY_KEYS), func.sum(g.utilised_kg), func.sum(g.final_kg)).group_by(
        *(g[c] for c in COUNTY_KEYS)
    )
    session.execute(COUNTY.insert().from_select([*COUNTY_KEYS, "utilised_kg", "final_kg"], select_county))
    _rebuild_paths(session)


COPIES = ("first_receiver_id", "first_route", "shipper_id", "receiver_id", "route", "counted")  # what a share copies


def _rekey(session: Session) -> None:
    """Set every share's copies (its path's parties and routes, and for a final share whether it counts) from its
    manifests, in one pass over the manifests and the shares (after a bulk load or a repair)."""
    facts = _facts(session, None)
    share = SHARES.c
    stored = sa_select(share.manifest_id, share.origin_id, share.placement, *(share[name] for name in COPIES))
    changed = []
    for manifest, origin, placement, *copies in session.execute(stored):
        sender, receiver, route, utilised = facts[int(manifest)]
        _, first_to, first_route, _ = facts[int(origin)]
        wanted = (first_to, first_route, sender, receiver, route, utilised and placement == FINAL)
        had = (int(copies[0]), str(copies[1]), int(copies[2]), int(copies[3]), str(copies[4]), bool(copies[5]))
        if had != wanted:
            keys = {"b_manifest_id": manifest, "b_origin_id": origin, "b_placement": placement}
            changed.append({**keys, **dict(zip(COPIES, wanted, strict=True))})
    _write_changed(session, changed, ("manifest_id", "origin_id", "placement"))


def _rebuild_paths(session: Session) -> None:
    session.execute(delete(PATH))
    share = SHARES.c
    keys = (
        share.origin_year,
        share.category_code,
        share.placement,
        share.origin_id == share.manifest_id,
        share.origin_shipper_id,
        share.first_receiver_id,
        share.shipper_id,
        share.receiver_id,
        share.first_route,
        share.route,
    )
    query = (
        sa_select(
            *keys,
            func.sum(share.kg),
            func.sum(case((and_(share.counted, share.placement == FINAL), share.kg), else_=0)),
            func.count(func.distinct(share.origin_id)),
        )
        .where(share.placement.in_(ON_A_PATH))
        .group_by(*keys)
    )
    session.execute(PATH.insert().from_select([*PATH_KEYS, *PATH_FIGURES], query))


def _path_key(row: Sequence[Any]) -> PathKey:
    year, category, placement, straight, generator, first, shipper, receiver, r0, r1 = row
    return (
        int(year),
        str(category),
        str(placement),
        bool(straight),
        int(generator),
        int(first),
        int(shipper),
        int(receiver),
        route_text(r0),
        route_text(r1),
    )


def route_text(value: Any) -> str:
    """A route as stored text, whether the driver gave the enum or its value."""
    return str(getattr(value, "value", value))


def stored_paths(session: Session) -> dict[tuple[Any, ...], tuple[int, int, int]]:
    """summary_path as stored, without the rows nothing is on."""
    p = PATH.c
    query = sa_select(*(p[k] for k in PATH_KEYS), *(p[k] for k in PATH_FIGURES))
    out = {_path_key(row[:10]): (int(row[10]), int(row[11]), int(row[12])) for row in session.execute(query)}
    return {key: figures for key, figures in out.items() if any(figures)}


@dataclass(frozen=True)
class Difference:
    """A summary row that differs from the base rows: its table, key, and both values (utilised and final kg; for
    summary_path kg, utilised kg and first manifests)."""

    table: str
    key: tuple[Any, ...]
    summary: tuple[int, ...]
    base: tuple[int, ...]

    def figures(self) -> tuple[str, ...]:
        """The names of the values, in their order."""
        return PATH_FIGURES if self.table == "summary_path" else ("utilised_kg", "final_kg")

    def as_json(self) -> dict[str, Any]:
        """The difference as a JSON object."""
        names = self.figures()
        return {
            "table": self.table,
            "key": list(self.key),
            "summary": dict(zip(names, self.summary, strict=True)),
            "base": dict(zip(names, self.base, strict=True)),
        }


@dataclass
class Base:
    """The reference figures recomputed from the base rows: per (year, generator, category, final route, region
    cell) utilised and final kg, and per path kg, utilised kg and first manifests."""

    by_generator: dict[tuple[Any, ...], Kg]
    paths: dict[PathKey, tuple[int, int, int]]


def base_rows(session: Session) -> Base:
    """The reference: the shares summed in Python with the parties, routes and rates.manifest_utilised read from
    the manifests themselves (not the shares' copies or flags). The manifests and the shares are read apart, since
    on Citus they live apart (shards and coordinator) and no join of the two by id can run there."""
    share, e = SHARES.c, Enterprise
    manifests = _facts(session, None)
    cells = {
        int(ident): (p or "", f or "", c or "")
        for ident, p, f, c in session.execute(
            sa_select(col(e.id), col(e.province_adcode), col(e.prefecture_adcode), col(e.county_adcode))
        )
    }
    query = sa_select(
        share.origin_year,
        share.origin_shipper_id,
        share.category_code,
        share.placement,
        share.origin_id,
        share.manifest_id,
        share.kg,
    ).where(share.placement.in_(ON_A_PATH))
    by_generator: dict[tuple[Any, ...], Kg] = {}
    kg: Counter[PathKey] = Counter()
    used: Counter[PathKey] = Counter()
    origins: dict[PathKey, set[int]] = {}
    for year, generator, category, placement, origin, manifest, weight in session.execute(query):
        sender, receiver, route, utilised = manifests[int(manifest)]
        first_sender, first_to, first_route, _ = manifests[int(origin)]
        counted = int(weight) if placement == FINAL and utilised else 0
        if placement == FINAL:
            key = (int(year), int(generator), str(category), route, *cells.get(int(generator), ("", "", "")))
            had = by_generator.get(key, (0, 0))
            by_generator[key] = (had[0] + counted, had[1] + int(weight))
        parties = (first_sender, first_to, sender, receiver, first_route, route)
        path = _path_key((year, category, placement, origin == manifest, *parties))
        kg[path] += int(weight)
        used[path] += counted
        origins.setdefault(path, set()).add(int(origin))
    paths = {path: (kg[path], used[path], len(origins[path])) for path in kg}
    return Base(by_generator, paths)


def check(session: Session) -> list[Difference]:
    """Every difference between the summary tables and the same sums recomputed from the base rows."""
    reference = base_rows(session)
    base = reference.by_generator
    base_gen = {(y, g, c, r): (u, f) for (y, g, c, r, *_), (u, f) in base.items()}
    base_cells = {(y, g, c, r): tuple(cell) for (y, g, c, r, *cell), _ in base.items()}
    county: dict[CountyKey, Kg] = {}
    for (year, _, category, _, p, f, c), (u, fin) in base.items():
        stored = county.get((year, p, f, c, category), (0, 0))
        county[(year, p, f, c, category)] = (stored[0] + u, stored[1] + fin)
    g = GEN.c
    stored_gen: dict[tuple[Any, ...], Kg] = {}
    stored_cells: dict[tuple[Any, ...], tuple[str, ...]] = {}
    for row in session.execute(sa_select(*(g[c] for c in (*GEN_KEYS, *CELL_COLUMNS)), g.utilised_kg, g.final_kg)):
        key = (int(row[0]), int(row[1]), str(row[2]), str(row[3]))
        stored_gen[key] = (int(row[7]), int(row[8]))
        stored_cells[key] = tuple(row[4:7])
    c = COUNTY.c
    stored_county: dict[tuple[Any, ...], Kg] = {
        (int(row[0]), *row[1:5]): (int(row[5]), int(row[6]))
        for row in session.execute(sa_select(*(c[k] for k in COUNTY_KEYS), c.utilised_kg, c.final_kg))
    }
    out = _compare("summary_generator", stored_gen, base_gen)
    out += _compare("summary_county", stored_county, dict(county))
    out += _compare_paths(stored_paths(session), reference.paths)
    # A generator's rows must sit under its region of now, or its county kilograms are in the wrong cell.
    for key, cell in sorted(stored_cells.items()):
        if key in base_cells and cell != base_cells[key] and stored_gen[key] != (0, 0):
            out.append(Difference("summary_generator.region", (*key, *cell), stored_gen[key], stored_gen[key]))
    return out


def _compare_paths(stored: dict[Any, tuple[int, int, int]], base: dict[Any, tuple[int, int, int]]) -> list[Difference]:
    out = []
    for key in sorted(set(stored) | set(base), key=repr):
        mine, theirs = stored.get(key, (0, 0, 0)), base.get(key, (0, 0, 0))
        if mine != theirs:
            out.append(Difference("summary_path", tuple(key), mine, theirs))
    return out


def _compare(table: str, stored: dict[Any, Kg], base: dict[Any, Kg]) -> list[Difference]:
    out = []
    for key in sorted(set(stored) | set(base), key=repr):
        mine, theirs = stored.get(key, (0, 0)), base.get(key, (0, 0))
        if mine != theirs:
            out.append(Difference(table, tuple(key), mine, theirs))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Kept with every licence change and enterprise move written through the ORM


REGION_COLUMNS = ("province_adcode", "prefecture_adcode", "county_adcode")


def _after_flush(session: Session, _context: Any) -> None:
    objects = [*session.new, *session.dirty, *session.deleted]
    pairs = {
        (obj.enterprise_id, obj.category_code)
        for obj in objects
        if isinstance(obj, Licence) and obj.enterprise_id is not None
    }
    # A licence edited to another enterprise or category changes the old pair too.
    for obj in objects:
        if isinstance(obj, Licence):
            attrs = inspect(obj).attrs
            history = {name: attrs[name].history for name in ("enterprise_id", "category_code")}
            olds_e = history["enterprise_id"].deleted or [obj.enterprise_id]
            olds_c = history["category_code"].deleted or [obj.category_code]
            pairs |= {(e, c) for e in olds_e for c in olds_c if e is not None}
    if pairs:
        licence_changed(session, pairs)
    moved = [
        obj.id for obj in session.dirty if isinstance(obj, Enterprise) and obj.id is not None and _region_changed(obj)
    ]
    if moved and _has_rows(session, moved):
        follow(session, moved)


def _region_changed(enterprise: Enterprise) -> bool:
    # A rename or a new contact leaves the summaries alone; only a move between region cells shifts kilograms.
    attrs = inspect(enterprise).attrs
    return any(attrs[name].history.has_changes() for name in REGION_COLUMNS)


def _has_rows(session: Session, generators: Sequence[int]) -> bool:
    return (
        session.execute(sa_select(GEN.c.year).where(GEN.c.generator_id.in_(list(generators))).limit(1)).first()
        is not None
    )


event.listen(Session, "after_flush", _after_flush)

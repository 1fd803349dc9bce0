"""The manifest number table, written by the manifest writers with every manifest, in the manifest's transaction.

transfer_batch is partitioned by year on PostgreSQL and spread by shipper on Citus, so it can hold no unique number:
manifest_number (models/waste.py) holds each number, and each shipper's idempotency key, once. Every way a manifest
is inserted writes its row here: the ORM's flush (a mapper hook below) and the bulk paths (imports, the demo loader,
the benchmarks) by `record`. A duplicate number or key fails the insert, and with it the manifest's transaction.
The row follows its manifest's year and shipper when they change (a hook below; on plain PostgreSQL and SQLite the
composite foreign key cascades the same change, on Citus that key cannot hold across shards).

The table is also the directory of the manifests' keys: `get` reads a manifest's year and shipper here first, so
that a lookup by id reads one year partition on PostgreSQL and one shard on Citus instead of all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, event, insert, inspect, select, update
from sqlalchemy.orm import Mapper, Session
from sqlmodel import Session as ModelSession
from sqlmodel import col
from sqlmodel import select as model_select

from models import Manifest, ManifestNumber

CHUNK = 5000


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


NUMBERS = _table(ManifestNumber)
BATCHES = _table(Manifest)
COLUMNS = ("number", "manifest_id", "year", "shipper_id", "idempotency_key")


def record(bind: Session | Connection, ids: Iterable[int]) -> None:
    """Write the number rows of manifests inserted in bulk (by id), from the manifests themselves."""
    listed = sorted(set(ids))
    b = BATCHES.c
    for start in range(0, len(listed), CHUNK):
        chosen = select(b.number, b.id, b.year, b.shipper_id, b.idempotency_key).where(
            b.id.in_(listed[start : start + CHUNK])
        )
        bind.execute(insert(NUMBERS).from_select(list(COLUMNS), chosen))


def _key(session: Session, ident: int) -> tuple[int, int] | None:
    n = NUMBERS.c
    key = session.execute(select(n.year, n.shipper_id).where(n.manifest_id == ident)).first()
    return None if key is None else (int(key[0]), int(key[1]))


def get(session: ModelSession, ident: int, *also: ColumnElement[bool], for_update: bool = False) -> Manifest | None:
    """The manifest of an id (meeting the further conditions), read by its full key; locked when asked."""

    def read(condition: ColumnElement[bool]) -> Manifest | None:
        query = model_select(Manifest).where(condition, *also)
        if for_update:
            query = query.with_for_update(of=Manifest).execution_options(populate_existing=True)
        return session.exec(query).first()

    by_id: ColumnElement[bool] = col(Manifest.id) == ident
    key = _key(session, ident)
    if key is None:
        return read(by_id)
    found = read(and_(by_id, col(Manifest.year) == key[0], col(Manifest.shipper_id) == key[1]))
    # A key out of step (a write that bypassed the writers) must not hide the manifest: ask by id alone.
    return found if found is not None else read(by_id)


def _inserted(_mapper: Mapper[Any], connection: Connection, target: Manifest) -> None:
    connection.execute(
        insert(NUMBERS).values(
            number=target.number,
            manifest_id=target.id,
            year=target.year,
            shipper_id=target.shipper_id,
            idempotency_key=target.idempotency_key,
        )
    )


def _updated(_mapper: Mapper[Any], connection: Connection, target: Manifest) -> None:
    attrs = inspect(target).attrs
    if not any(attrs[name].history.has_changes() for name in ("year", "shipper_id", "number")):
        return
    connection.execute(
        update(NUMBERS)
        .where(NUMBERS.c.manifest_id == target.id)
        .values(number=target.number, year=target.year, shipper_id=target.shipper_id)
    )


event.listen(Manifest, "after_insert", _inserted)
event.listen(Manifest, "after_update", _updated)

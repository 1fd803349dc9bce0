"""The manifest number table, written by the manifest writers with every manifest, in the manifest's transaction.

transfer_batch is partitioned by year on PostgreSQL and spread by shipper on Citus, so it can hold no unique number:
manifest_number (models/waste.py) holds each number, and each shipper's idempotency key, once. Every way a manifest
is inserted writes its row here: the ORM's flush (a mapper hook below) and the bulk paths (imports, the demo loader,
the benchmarks) by `record`. A duplicate number or key fails the insert, and with it the manifest's transaction.
The row follows its manifest's year and shipper when they change (a hook below; on plain PostgreSQL and SQLite the
composite foreign key cascades the same change, on Citus that key cannot hold across shards).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Table, event, insert, inspect, select, update
from sqlalchemy.orm import Mapper, Session

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

"""Late filings: a new manifest or declaration of a locked year, held as a request until a bureau approves it.

A change to a locked record is a correction; a record that did not exist has nothing to correct. Both wait in the
same queue (flows/waste/corrections.py) and, once approved, are written by the record's one writer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from flows.access.accounts import Principal
from flows.kernel.errors import Conflict, Forbidden, InvalidInput
from flows.kernel.messages import Term
from flows.waste import manifests
from flows.waste.declarations import DeclarationIn, apply_declaration, existing_declaration, parse_declaration
from models import Declaration, Manifest
from models.enums import UserRole

MANIFEST = "late_manifest"
DECLARATION = "late_declaration"
TABLES = (MANIFEST, DECLARATION)
KINDS = {"manifest": MANIFEST, "declaration": DECLARATION}  # the API's names of what is filed late


def checked(
    session: Session, principal: Principal, table: str, payload: dict[str, Any]
) -> tuple[int, int, dict[str, Any], tuple[int, ...]]:
    """The filer's enterprise and the year, the payload as it will be applied, and the parties whose lock admits it."""
    if table == DECLARATION:
        decl = parse_declaration(payload)
        _ensure_no_declaration(session, decl)
        # Stored as parsed: what waits for approval is exactly what will be applied, and nothing else.
        return decl.enterprise_id, decl.year, decl.model_dump(mode="json"), (decl.enterprise_id,)
    manifest = manifests.parse_manifest(payload)
    if manifest.dispatched_at is None:
        # Without a dispatch date the batch belongs to this year, which is not the locked one it is filed for.
        raise InvalidInput("lockcheck.late_needs_dispatch", field="dispatched_at", column=Term("field.dispatched_at"))
    shipper, receiver, carrier = manifests.parties_of(session=session, principal=principal, manifest=manifest)
    if not (principal.is_admin or (principal.role is UserRole.enterprise and principal.enterprise_id == shipper)):
        raise Forbidden("waste.shipper_logs_own")
    stored = manifest.model_dump(
        mode="json", exclude_none=True, exclude={"shipper_uscc", "receiver_uscc", "carrier_uscc"}
    )
    stored.update(shipper_id=shipper, receiver_id=receiver, carrier_id=carrier)
    if carrier is None:
        stored.pop("carrier_id")
    return shipper, manifests.reporting_year(manifest.dispatched_at), stored, (shipper, receiver)


def _ensure_no_declaration(session: Session, decl: DeclarationIn) -> None:
    # A declaration that exists is changed by a correction, which shows the values before and after.
    if existing_declaration(session=session, decl=decl) is not None:
        raise Conflict(
            "lockcheck.declaration_exists", field="category_code", category=decl.category_code, year=decl.year
        )


def apply_manifest(session: Session, principal: Principal, payload: dict[str, Any], now: datetime) -> Manifest:
    """Write an approved late manifest through the one writer, its lock overridden by the approval."""
    manifest = manifests.parse_manifest(payload)
    batch, _new = manifests.create_manifest(
        session=session, principal=principal, manifest=manifest, now=now, late_approved=True
    )
    return batch


def apply_declaration_late(
    session: Session, principal: Principal, payload: dict[str, Any], now: datetime
) -> Declaration:
    """Write an approved late declaration, unless one was filed for the same category and year meanwhile."""
    decl = parse_declaration(payload)
    _ensure_no_declaration(session, decl)
    return apply_declaration(session=session, principal=principal, decl=decl, now=now, action="late_filing")

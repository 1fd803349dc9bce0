"""Annual declarations: an enterprise's figures per waste category and year."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field, ValidationError
from sqlmodel import Session, col, select

from flows.access.accounts import Principal
from flows.access.locks import ensure_unlocked
from flows.access.scope import ensure_write_for_enterprise, readable_enterprise_ids
from flows.access.trail import record, snapshot
from flows.kernel.bounds import MAX_DECLARED_T, Code, Id, Year
from flows.kernel.errors import InvalidInput, NotFound
from flows.kernel.messages import Term, msg
from flows.kernel.quantity import ExactTonnes
from flows.waste.manifests import field_error, validation_problem
from flows.waste.reference import stored_code
from models import Declaration, Enterprise
from models.waste import DeclarationBase

# Tonnes of one enterprise's year of one category (flows/kernel/bounds.py says why 1e9 t).
Tonnes = Annotated[ExactTonnes, Field(ge=0, le=MAX_DECLARED_T)]

FIGURES = (
    "generated_t",
    "utilised_t",
    "utilised_prior_t",
    "disposed_t",
    "disposed_prior_t",
    "stored_t",
    "dumped_t",
)


class DeclarationIn(DeclarationBase):
    """A declaration as submitted; validated before anything is written, every figure below its ceiling."""

    enterprise_id: Id
    category_code: Code
    year: Year
    generated_t: Tonnes = Decimal(0)
    utilised_t: Tonnes = Decimal(0)
    utilised_prior_t: Tonnes = Decimal(0)
    disposed_t: Tonnes = Decimal(0)
    disposed_prior_t: Tonnes = Decimal(0)
    stored_t: Tonnes = Decimal(0)
    dumped_t: Tonnes = Decimal(0)


def parse_declaration(data: dict[str, object], *, row: int | None = None) -> DeclarationIn:
    """Validate raw input, naming the first wrong field (and the row, for imports)."""
    try:
        decl = DeclarationIn.model_validate(data)
    except ValidationError as exc:
        raise field_error(*validation_problem(exc, "declaration"), row) from None
    for prior, total in (("utilised_prior_t", "utilised_t"), ("disposed_prior_t", "disposed_t")):
        if getattr(decl, prior) > getattr(decl, total):
            raise field_error(prior, msg("waste.cannot_exceed", other=Term(f"field.{total}")), row)
    return decl


def existing_declaration(*, session: Session, decl: DeclarationIn) -> Declaration | None:
    """The stored declaration of the same enterprise, category and year, if any."""
    return session.exec(
        select(Declaration).where(
            Declaration.enterprise_id == decl.enterprise_id,
            Declaration.category_code == decl.category_code,
            Declaration.year == decl.year,
        )
    ).first()


def apply_declaration(
    *, session: Session, principal: Principal, decl: DeclarationIn, now: datetime, action: str = "upsert"
) -> Declaration:
    """Insert or replace the (enterprise, category, year) figures and record it; no lock check (callers do)."""
    # A 2024-catalogue code is stored under its class (flows/waste/refdata.py says why).
    decl.category_code = stored_code(session, decl.category_code)
    if session.get(Enterprise, decl.enterprise_id) is None:
        raise InvalidInput(
            "waste.no_enterprise", field="enterprise_id", column=Term("field.enterprise_id"), ident=decl.enterprise_id
        )
    existing = existing_declaration(session=session, decl=decl)
    before = snapshot(existing)
    row = existing or Declaration(enterprise_id=decl.enterprise_id, category_code=decl.category_code, year=decl.year)
    for name in FIGURES:
        setattr(row, name, getattr(decl, name))
    session.add(row)
    session.flush()
    record(
        session=session,
        principal=principal,
        action=action,
        table="declaration",
        row_id=row.id,
        before=before,
        after=snapshot(row),
        now=now,
        enterprises=(row.enterprise_id,),
    )
    return row


def save_declaration(*, session: Session, principal: Principal, decl: DeclarationIn, now: datetime) -> Declaration:
    """An enterprise files or replaces its declaration; refused for other enterprises and for locked years."""
    ensure_write_for_enterprise(principal, decl.enterprise_id, Term("waste.table.declaration"))
    new_record = existing_declaration(session=session, decl=decl) is None
    ensure_unlocked(session=session, enterprise_id=decl.enterprise_id, year=decl.year, new_record=new_record)
    return apply_declaration(session=session, principal=principal, decl=decl, now=now)


def list_declarations(
    *,
    session: Session,
    principal: Principal,
    year: int | None = None,
    enterprise_id: int | None = None,
    offset: int = 0,
    limit: int = 100,
) -> list[Declaration]:
    """Declarations the principal may read."""
    query = select(Declaration).where(col(Declaration.enterprise_id).in_(readable_enterprise_ids(principal)))
    if year is not None:
        query = query.where(Declaration.year == year)
    if enterprise_id is not None:
        query = query.where(Declaration.enterprise_id == enterprise_id)
    query = query.order_by(col(Declaration.year), col(Declaration.enterprise_id), col(Declaration.category_code))
    return list(session.exec(query.offset(offset).limit(limit)).all())


def get_declaration(*, session: Session, principal: Principal, declaration_id: int) -> Declaration:
    """One declaration in scope."""
    query = select(Declaration).where(
        Declaration.id == declaration_id, col(Declaration.enterprise_id).in_(readable_enterprise_ids(principal))
    )
    decl = session.exec(query).first()
    if decl is None:
        raise NotFound("waste.no_declaration", field="declaration_id", declaration_id=declaration_id)
    return decl

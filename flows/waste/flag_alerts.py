"""The flag scan: every flag on an enterprise, of the current and the previous reporting year, told to its users (and
the bureaus of its county and city) once.

Flags are computed on read (flows/waste/flags.py), so the scan lists them as the system sees them and keeps in
flag_notice the key of each one told (the same key the on-write announcements of flows/waste/alerts.py mark). A
flag is told when its key is first written: two scans at once (the worker and a cron run) tell it once between them.
Work per run is bounded: at most MAX_READ flags are read and MAX_TOLD told; what is left is told at the next run.
A year read whole forgets the keys of its flags that cleared, so that a flag that comes back is told again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, or_, union
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from flows.kernel.clock import CST
from flows.kernel.principal import system_principal
from flows.notices.inbox import bilingual, notify, of_enterprises
from flows.waste.alerts import flag_key, mark_told
from flows.waste.flags import Flag, FlagKind, list_flags
from models import Enterprise, FlagNotice, User
from models.enums import Channel, UserRole

PAGE = 500
MAX_READ = 20_000  # flags read per run, both years together
MAX_TOLD = 1_000  # flags told per run
SETTLE = timedelta(hours=1)
# A rate above 100% over a whole region or park concerns no one enterprise: the bureaus see it on the audit page.
KINDS = [k.value for k in FlagKind if k is not FlagKind.scope_rate_above_100]


@dataclass(frozen=True)
class ScanResult:
    """What one scan did: the flags it read and those it told now."""

    read: int
    told: int


def _concerned(enterprise_ids: list[int]) -> ColumnElement[bool]:
    # The enterprises' accounts, and the bureaus of their county and city (the province's would hear of every flag).
    ent = Enterprise
    theirs = col(ent.id).in_(enterprise_ids)
    regions = union(
        sa_select(col(ent.county_adcode)).where(theirs, col(ent.county_adcode).is_not(None)),
        sa_select(col(ent.prefecture_adcode)).where(theirs, col(ent.prefecture_adcode).is_not(None)),
    )
    bureau = and_(col(User.role) == UserRole.bureau.value, col(User.scope_adcode).in_(regions))
    return or_(of_enterprises(*enterprise_ids), bureau)


def _tell(session: Session, flag: Flag, now: datetime) -> None:
    finding = flag.finding()
    subject, _, subject_id = flag.subject.partition("/")
    notify(
        session=session,
        to=_concerned(flag.enterprise_ids),
        kind="flag_found",
        subject=subject[:32],
        subject_id=subject_id[:64],
        params={"year": flag.year, "finding": bilingual(finding.render("zh-CN"), finding.render("en"))},
        now=now,
    )


def _forget_cleared(session: Session, year: int, seen: set[str], now: datetime) -> None:
    # A flag of the year no longer raised has cleared: its key goes, so that it is told again if it comes back. Keys
    # marked within the last hour stay: an on-write mark committed during this scan names a flag it could not see.
    query = select(FlagNotice.key).where(FlagNotice.year == year, col(FlagNotice.announced_at) < now - SETTLE)
    cleared = [key for key in session.exec(query).all() if key not in seen]
    for start in range(0, len(cleared), PAGE):
        chunk = cleared[start : start + PAGE]
        session.execute(delete(FlagNotice).where(col(FlagNotice.key).in_(chunk)))


def announce_flags(session: Session, now: datetime) -> ScanResult:
    """Tell each enterprise's users of the flags on it not told before (the caller commits)."""
    principal = system_principal(Channel.system)
    this_year = now.astimezone(CST).year
    read = told = 0
    for year in (this_year - 1, this_year):
        offset, seen, whole = 0, set[str](), False
        while read < MAX_READ and told < MAX_TOLD:
            page = list_flags(
                session=session, principal=principal, year=year, kinds=KINDS, offset=offset, limit=PAGE
            ).data
            read += len(page)
            keys = {flag_key(f.kind.value, f.year, f.subject) for f in page}
            seen |= keys
            known = (
                set(session.exec(select(FlagNotice.key).where(col(FlagNotice.key).in_(keys))).all()) if keys else set()
            )
            for flag in page:
                if told >= MAX_TOLD:
                    break
                if not flag.enterprise_ids or flag_key(flag.kind.value, flag.year, flag.subject) in known:
                    continue
                if mark_told(session=session, kind=flag.kind.value, year=flag.year, subject=flag.subject, now=now):
                    told += 1
                    _tell(session, flag, now)
            if len(page) < PAGE:
                whole = told < MAX_TOLD
                break
            offset += PAGE
        if whole:
            _forget_cleared(session, year, seen, now)
    return ScanResult(read=read, told=told)

"""The flag scan: every flag on an enterprise, of the current and the previous reporting year, told to its users once.

Flags are computed on read (flows/waste/flags.py), so the scan lists them as the system sees them and keeps in
flag_notice the key of each one told (the same key the on-write announcements of flows/waste/alerts.py mark). A
flag is told when its key is first written: two scans at once (the worker and a cron run) tell it once between them.
Work per run is bounded: at most MAX_READ flags are read and MAX_TOLD told; what is left is told at the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from flows.kernel.clock import CST
from flows.kernel.principal import system_principal
from flows.notices.inbox import bilingual, notify, of_enterprises
from flows.waste.alerts import flag_key, mark_told
from flows.waste.flags import Flag, FlagKind, list_flags
from models import FlagNotice
from models.enums import Channel

PAGE = 500
MAX_READ = 20_000  # flags read per run, both years together
MAX_TOLD = 1_000  # flags told per run
# A rate above 100% over a whole region or park concerns no one enterprise: the bureaus see it on the audit page.
KINDS = [k.value for k in FlagKind if k is not FlagKind.scope_rate_above_100]


@dataclass(frozen=True)
class ScanResult:
    """What one scan did: the flags it read and those it told now."""

    read: int
    told: int


def _tell(session: Session, flag: Flag, now: datetime) -> None:
    finding = flag.finding()
    subject, _, subject_id = flag.subject.partition("/")
    notify(
        session=session,
        to=of_enterprises(*flag.enterprise_ids),
        kind="flag_found",
        subject=subject[:32],
        subject_id=subject_id[:64],
        params={"year": flag.year, "finding": bilingual(finding.render("zh-CN"), finding.render("en"))},
        now=now,
    )


def announce_flags(session: Session, now: datetime) -> ScanResult:
    """Tell each enterprise's users of the flags on it not told before (the caller commits)."""
    principal = system_principal(Channel.system)
    this_year = now.astimezone(CST).year
    read = told = 0
    for year in (this_year - 1, this_year):
        offset = 0
        while read < MAX_READ and told < MAX_TOLD:
            page = list_flags(
                session=session, principal=principal, year=year, kinds=KINDS, offset=offset, limit=PAGE
            ).data
            read += len(page)
            keys = {flag_key(f.kind.value, f.year, f.subject) for f in page}
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
                break
            offset += PAGE
    return ScanResult(read=read, told=told)

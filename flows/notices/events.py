"""Events of the access room that users hear of: a reporting year locked or unlocked in their region."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from flows.notices.inbox import bilingual, in_region, notify
from models import Region


def period_lock_changed(
    *, session: Session, adcode: str, year: int, locked: bool, actor_id: int | None, now: datetime
) -> int:
    """Tell every account in the region (and its bureaus above) that a year was locked or unlocked there."""
    region = session.get(Region, adcode)
    name = bilingual(region.name_zh, region.name_en) if region else bilingual(adcode, adcode)
    return notify(
        session=session,
        to=in_region(adcode),
        kind="period_locked" if locked else "period_unlocked",
        subject="lock",
        subject_id=f"{adcode}/{year}",
        params={"region": name, "year": year},
        now=now,
        actor_id=actor_id,
    )

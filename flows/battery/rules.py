"""The rules the battery chain is held to, as data: reporting deadlines, the whitelist's thresholds, the calendar.

Each deadline and each threshold names the rule it comes from and the period it is in force, so that a newer
rule is one more entry in a table. Where a number is taken from practice rather than from a rule's text, the
entry says so. Working days are China's: statutory holidays off, adjusted weekend working days on, as the
`holidays` package (holidays.China) knows them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import holidays

from flows.kernel.clock import CST
from models.enums import BatteryEventType as T
from models.enums import EnterpriseRole as R

# ---------------------------------------------------------------------------------------------------------------
# Calendar


@lru_cache(maxsize=1)
def _china() -> holidays.HolidayBase:
    # Years are filled in on demand; one instance serves every lookup.
    china: holidays.HolidayBase = holidays.country_holidays("CN")
    return china


def local_day(moment: datetime) -> date:
    """The China Standard Time calendar day of a moment (naive moments are UTC, as stored)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(CST).date()


def is_working_day(day: date) -> bool:
    """Whether a day is a working day in China (adjusted weekend working days included)."""
    return bool(_china().is_working_day(day))


@lru_cache(maxsize=65536)
def nth_working_day(day: date, n: int) -> date:
    """The n-th working day after `day`, counting from the day after it (the last day is included)."""
    return _china().get_nth_working_day(day, n)


def _holiday_data_through() -> int:
    # The last year for which the package lists China's arranged holidays and adjusted working days; later years
    # are only the fixed-date holidays and plain weekends, an estimate.
    from holidays.countries import china

    return max(china.ChinaStaticHolidays.special_public_holidays)


HOLIDAY_DATA_THROUGH = _holiday_data_through()


def provisional(*days: date) -> bool:
    """Whether a count of working days over these days rests on a year the holiday data does not cover."""
    return any(d.year > HOLIDAY_DATA_THROUGH for d in days)


def working_days_between(start: date, end: date) -> int:
    """Working days after `start` up to and including `end` (0 when end <= start)."""
    if end <= start:
        return 0
    return sum(1 for k in range(1, (end - start).days + 1) if is_working_day(start + timedelta(days=k)))


# ---------------------------------------------------------------------------------------------------------------
# Reporting deadlines

TRACEABILITY_2018 = (
    "Interim provisions on traceability management of NEV power battery recycling (MIIT 2018 No. 35), "
    "in force 2018-08-01"
)


@dataclass(frozen=True)
class Deadline:
    """Who must upload which events within how many working days, and under which rule."""

    key: str
    actors: frozenset[R]  # the reporting enterprise plays one of these roles
    events: frozenset[T]
    working_days: int
    rule: str
    duty: str
    in_force_from: date = date(2018, 8, 1)
    in_force_to: date | None = None  # exclusive; None while in force

    def applies(self, roles: Iterable[str], event: T, day: date) -> bool:
        """Whether this deadline binds an event of this type, reported by an enterprise with these roles, on a day."""
        if event not in self.events or day < self.in_force_from:
            return False
        if self.in_force_to is not None and day >= self.in_force_to:
            return False
        return any(R(r) in self.actors for r in roles if r in R.__members__)


# The 2018 provisions' table, mapped onto our event types. The mapping of its duties to event types is ours.
DEADLINES: tuple[Deadline, ...] = (
    Deadline(
        "vehicle_installed",
        frozenset({R.vehicle_maker}),
        frozenset({T.installed}),
        15,
        TRACEABILITY_2018,
        "vehicle maker or importer: vehicle leaves the factory or clears customs, battery codes bound to the VIN",
    ),
    Deadline(
        "vehicle_stock",
        frozenset({R.vehicle_maker, R.collection_outlet}),
        frozenset({T.retired, T.collected, T.transferred}),
        30,
        TRACEABILITY_2018,
        "vehicle maker (and its collection outlets): retired battery taken into stock, or handed out of stock",
    ),
    Deadline(
        "cascade_stock",
        frozenset({R.cascade_user}),
        frozenset({T.collected, T.transferred, T.tested, T.repurposed, T.in_cascade_use, T.retired, T.dismantled}),
        15,
        TRACEABILITY_2018,
        "cascade-use enterprise: cascade product out of stock; its own waste batteries taken in or handed out",
    ),
    Deadline(
        "recycler_stock",
        frozenset({R.recycler}),
        frozenset({T.collected, T.transferred, T.dismantled, T.recovered}),
        30,
        TRACEABILITY_2018,
        "recycler (regeneration): battery taken into stock; recycling and final treatment completed",
    ),
    # Art. 13: a dismantler's taking in of a scrapped vehicle (its battery taken into stock with it), and its
    # handing out of a removed battery. The mapping to our event types is ours.
    Deadline(
        "dismantler_intake",
        frozenset({R.dismantler}),
        frozenset({T.collected}),
        15,
        TRACEABILITY_2018 + ", Art. 13",
        "end-of-life vehicle dismantler: scrapped vehicle taken in and its scrapping certificate issued",
    ),
    Deadline(
        "dismantler_handout",
        frozenset({R.dismantler}),
        frozenset({T.transferred, T.dismantled}),
        15,
        TRACEABILITY_2018 + ", Art. 13",
        "end-of-life vehicle dismantler: battery removed from the vehicle and handed out of stock",
    ),
)
MIN_DEADLINE_DAYS = min(d.working_days for d in DEADLINES)
DEADLINE_TYPES = frozenset(t for d in DEADLINES for t in d.events)


def deadline_for(event: T, roles: Iterable[str], day: date) -> Deadline | None:
    """The strictest deadline binding an event (None when no rule sets one, e.g. production)."""
    roles = list(roles)
    binding = [d for d in DEADLINES if d.applies(roles, event, day)]
    return min(binding, key=lambda d: d.working_days) if binding else None


def due_date(event_day: date, deadline: Deadline) -> date:
    """The last day an event of `event_day` may be uploaded under a deadline."""
    return nth_working_day(event_day, deadline.working_days)


# Two windows the audit needs that no rule's text sets; both taken from practice, so a rule can replace them here.
@dataclass(frozen=True)
class Window:
    """A time the audit waits before it calls something missing, with where the number comes from."""

    key: str
    working_days: int
    source: str


COLLECTION_WINDOW = Window(
    "collection",
    30,
    "practice: no rule sets a time from retirement to collection; we wait the 30 working days the 2018 provisions "
    "give a vehicle maker to record a retired battery taken into stock",
)
CHILD_FOLLOW_UP_WINDOW = Window(
    "children_after_dismantling",
    30,
    "practice: the 30 working days the 2018 provisions give a recycler to record recycling completed; a module or "
    "cell not seen within them after its pack was opened has vanished",
)


# ---------------------------------------------------------------------------------------------------------------
# Whitelist thresholds by edition


@dataclass(frozen=True)
class Threshold:
    """One requirement on a recycler: a metric held to a minimum (or a maximum) share."""

    metric: str
    minimum: float | None = None
    maximum: float | None = None
    text: str = ""
    measurable: bool = True  # False when our recovery reports carry no figure to test it against


@dataclass(frozen=True)
class Edition:
    """An edition of the MIIT standard conditions, the day it took effect, and its thresholds (None: unknown)."""

    name: str
    title: str
    in_force_from: date
    thresholds: tuple[Threshold, ...] | None
    note: str = ""

    @property
    def known(self) -> bool:
        return self.thresholds is not None


EDITIONS: tuple[Edition, ...] = (
    Edition(
        "2019",
        "Industry standard conditions for comprehensive utilisation of waste NEV power batteries (2019 edition)",
        date.min,  # in force until the 2024 edition took effect; the day it took effect does not matter here
        None,
        note="no thresholds known for edition 2019: its recovery rates were not found in a source we could check",
    ),
    Edition(
        "2024",
        "Industry standard conditions for comprehensive utilisation of waste NEV power batteries (2024 edition)",
        date(2024, 12, 24),
        (
            Threshold("lithium", minimum=0.90, text="lithium recovery in smelting >= 90%"),
            Threshold("nickel", minimum=0.98, text="nickel recovery in smelting >= 98%"),
            Threshold("cobalt", minimum=0.98, text="cobalt recovery in smelting >= 98%"),
            Threshold("manganese", minimum=0.98, text="manganese recovery in smelting >= 98%"),
            Threshold(
                "electrode_powder",
                minimum=0.98,
                text="electrode powder recovered after crushing and separation >= 98%",
                measurable=False,  # a report gives the powder recovered, not the powder the batteries held
            ),
            Threshold(
                "aluminium_impurity", maximum=0.015, text="aluminium impurity in the powder < 1.5%", measurable=False
            ),
            Threshold("copper_impurity", maximum=0.015, text="copper impurity in the powder < 1.5%", measurable=False),
            Threshold(
                "lithium_carbonate_energy",
                maximum=2200,
                text="lithium carbonate production < 2,200 kgce per tonne",
                measurable=False,
            ),
            Threshold(
                "material_repair", minimum=0.99, text="material repair: target materials >= 99%", measurable=False
            ),
            Threshold("process_water", minimum=0.90, text="process water recycled >= 90%", measurable=False),
        ),
    ),
)
METALS = ("lithium", "nickel", "cobalt", "manganese")


def edition_in_force(day: date) -> Edition:
    """The edition of the standard conditions in force on a day."""
    current = EDITIONS[0]
    for edition in EDITIONS:
        if edition.in_force_from <= day:
            current = edition
    return current


def edition_bounds(edition: Edition) -> tuple[date, date | None]:
    """The days an edition is in force: [from, to), to None while it is the newest."""
    later = [e.in_force_from for e in EDITIONS if e.in_force_from > edition.in_force_from]
    return edition.in_force_from, (min(later) if later else None)


def metal_thresholds(edition: Edition) -> dict[str, float]:
    """The minimum recovery share of each metal an edition sets (empty when unknown)."""
    return {
        t.metric: t.minimum
        for t in edition.thresholds or ()
        if t.metric in METALS and t.minimum is not None and t.measurable
    }

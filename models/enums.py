"""Closed vocabularies, kept in one place; the database enforces them with CHECK constraints."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import String


class RegionLevel(StrEnum):
    province = "province"
    prefecture = "prefecture"
    county = "county"


class ParkLevel(StrEnum):
    national = "national"
    provincial = "provincial"
    other = "other"


class TransformationStatus(StrEnum):
    not_started = "not_started"
    in_progress = "in_progress"
    completed = "completed"


class EnterpriseRole(StrEnum):
    generator = "generator"
    collector = "collector"
    transporter = "transporter"
    utiliser = "utiliser"
    disposer = "disposer"
    battery_maker = "battery_maker"
    vehicle_maker = "vehicle_maker"
    collection_outlet = "collection_outlet"
    cascade_user = "cascade_user"
    recycler = "recycler"
    dismantler = "dismantler"  # 报废机动车回收拆解企业: end-of-life vehicle dismantler


class LicenceActivity(StrEnum):
    utilisation = "utilisation"
    disposal = "disposal"
    storage = "storage"
    collection = "collection"
    transport = "transport"


class Route(StrEnum):
    """Intended treatment at the receiver of a transfer batch."""

    cement_admixture = "cement_admixture"
    building_materials = "building_materials"
    backfill = "backfill"
    road_base = "road_base"
    metal_recovery = "metal_recovery"
    other_utilisation = "other_utilisation"
    disposal = "disposal"
    storage = "storage"
    transfer = "transfer"  # collection, sorting, pre-treatment (收集转运, 预处理): an intermediate step, like storage


UTILISATION_ROUTES = frozenset(
    {
        Route.cement_admixture,
        Route.building_materials,
        Route.backfill,
        Route.road_base,
        Route.metal_recovery,
        Route.other_utilisation,
    }
)


# Routes that deliver a lot to an intermediary, who sends it on: never a final step (flows/waste/chains.py).
INTERMEDIATE_ROUTES = frozenset({Route.storage, Route.transfer})


class TransportMode(StrEnum):
    """How a lot travels from shipper to receiver."""

    road = "road"
    rail = "rail"
    waterway = "waterway"
    conveyor = "conveyor"
    pipeline = "pipeline"


class Weighing(StrEnum):
    """Whether the dispatched weight was weighed or estimated."""

    weighed = "weighed"
    estimated = "estimated"


class Placement(StrEnum):
    """Where the kilograms of a first manifest are now."""

    final = "final"  # received at a final step (a utilisation route or disposal)
    held = "held"  # received by an intermediary and not sent on yet
    transit = "transit"  # dispatched, not received yet


class ManifestStatus(StrEnum):
    draft = "draft"
    dispatched = "dispatched"
    received = "received"
    rejected = "rejected"
    corrected = "corrected"
    cancelled = "cancelled"


class BatteryLevel(StrEnum):
    pack = "pack"
    module = "module"
    cell = "cell"


class BatteryState(StrEnum):
    produced = "produced"
    installed = "installed"
    retired = "retired"
    collected = "collected"
    tested = "tested"
    repurposed = "repurposed"
    in_cascade_use = "in_cascade_use"
    dismantled = "dismantled"
    recovered = "recovered"


class BatteryEventType(StrEnum):
    produced = "produced"
    installed = "installed"
    retired = "retired"
    collected = "collected"
    tested = "tested"
    repurposed = "repurposed"
    in_cascade_use = "in_cascade_use"
    dismantled = "dismantled"
    recovered = "recovered"
    transferred = "transferred"


class WhitelistKind(StrEnum):
    cascade_use = "cascade_use"
    recycling = "recycling"


class UserRole(StrEnum):
    admin = "admin"
    bureau = "bureau"
    park_manager = "park_manager"
    enterprise = "enterprise"


class Channel(StrEnum):
    web = "web"
    api = "api"
    cli = "cli"
    import_ = "import"
    system = "system"


def check_in(column: str, enum: type[StrEnum]) -> str:
    """SQL for a CHECK constraint that keeps a column inside an enumeration."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return f"{column} IN ({values})"


# Enumerations are stored as short strings guarded by CHECK constraints, the same on SQLite and PostgreSQL.
ENUM_STR = String(32)

"""SQLModel tables and their schemas; importing this package registers every table."""

from models.accounts import (
    ApiToken,
    AuditLog,
    CorrectionRequest,
    LoginFailure,
    LoginSession,
    PeriodLock,
    User,
)
from models.battery import Battery, BatteryEvent, RecoveryReport
from models.enterprise import Enterprise, EnterpriseRoleLink, Licence, WhitelistEntry
from models.reference import Park, Region, Target, TargetCategory, WasteCategory
from models.waste import BatchCorrection, Declaration, TransferBatch

__all__ = [
    "BatchCorrection",
    "ApiToken",
    "CorrectionRequest",
    "LoginFailure",
    "LoginSession",
    "AuditLog",
    "Battery",
    "BatteryEvent",
    "Declaration",
    "Enterprise",
    "EnterpriseRoleLink",
    "Licence",
    "Park",
    "PeriodLock",
    "RecoveryReport",
    "Region",
    "Target",
    "TargetCategory",
    "TransferBatch",
    "User",
    "WasteCategory",
    "WhitelistEntry",
]

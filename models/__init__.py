"""SQLModel tables and their schemas; importing this package registers every table."""

# Registers the listener that hands stored times back aware (UTC) on SQLite as on PostgreSQL, for every table model.
from models import times as times
from models.accounts import (
    ApiToken,
    AuditHead,
    AuditLog,
    CorrectionRequest,
    LoginFailure,
    LoginSession,
    PeriodLock,
    User,
)
from models.asks import CorrectionAsk
from models.battery import Battery, BatteryCode, BatteryEvent, RecoveryReport
from models.enterprise import Enterprise, EnterpriseRoleLink, Licence, LicenceRevision, WhitelistEntry
from models.files import Attachment
from models.flagwork import FlagEntry, FlagWork
from models.notices import FlagNotice, Notice, NoticePreference
from models.reference import Park, Region, Target, TargetCategory, WasteCategory
from models.revisions import CorrectionAttachment, RateRevision
from models.summaries import SummaryCounty, SummaryGenerator, SummaryPath
from models.waste import (
    Declaration,
    Manifest,
    ManifestCorrection,
    ManifestDraw,
    ManifestNumber,
    ManifestShare,
    ManifestSource,
    NumberCounter,
)

__all__ = [
    "Attachment",
    "ManifestCorrection",
    "ManifestNumber",
    "ApiToken",
    "CorrectionAsk",
    "CorrectionAttachment",
    "CorrectionRequest",
    "LoginFailure",
    "LoginSession",
    "AuditHead",
    "AuditLog",
    "Battery",
    "BatteryCode",
    "BatteryEvent",
    "Declaration",
    "Enterprise",
    "EnterpriseRoleLink",
    "Licence",
    "LicenceRevision",
    "NumberCounter",
    "FlagEntry",
    "FlagNotice",
    "FlagWork",
    "Notice",
    "NoticePreference",
    "Park",
    "PeriodLock",
    "RateRevision",
    "RecoveryReport",
    "Region",
    "Target",
    "TargetCategory",
    "Manifest",
    "ManifestDraw",
    "ManifestShare",
    "ManifestSource",
    "SummaryCounty",
    "SummaryGenerator",
    "SummaryPath",
    "User",
    "WasteCategory",
    "WhitelistEntry",
]

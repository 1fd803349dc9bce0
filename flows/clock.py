"""China Standard Time: how ledgers, weighbridges and reporting deadlines in Sichuan count days and years."""

from __future__ import annotations

from datetime import timedelta, timezone

CST = timezone(timedelta(hours=8), "CST")

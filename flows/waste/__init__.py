"""Bulk industrial solid waste: reference data (categories), targets, annual declarations, manifests and their one
writer, corrections, the utilisation rate as official statistics compute it, the audit flags, the tonnes that moved
(movements), and the CSV/XLSX imports. Never imports the battery room."""

# Registers the write hook that keeps every chain's draws and shares with its manifests (flows/waste/chains.py).
from flows.waste import chains as chains  # noqa: E402

# Registers the hooks that write each manifest's number row with the manifest (flows/waste/numbers.py).
from flows.waste import numbers as numbers  # noqa: E402

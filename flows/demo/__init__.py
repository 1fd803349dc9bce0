"""The deterministic Sichuan demo: its data tables, the loader, and the demo accounts."""

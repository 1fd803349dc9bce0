"""Power batteries: the GB/T 34014 code, the reporting rules and whitelist thresholds as data, the chain (the one
writer of registrations and events, trace and reverse trace) and its audit. Never imports the waste room."""

"""Access: who may see and do what. Accounts and sign-in, the one place that says whether a region, park or
enterprise is in a principal's scope (scope), the hash-chained audit trail, period locks, and the enterprise
directory. Nothing here knows about waste or batteries."""

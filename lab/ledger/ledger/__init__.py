"""ledger: a small double-entry-free ledger API, the lab's second service (see README.md)."""

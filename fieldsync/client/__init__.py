"""The reference device client: what a phone does, in Python (store, sync, CLI)."""

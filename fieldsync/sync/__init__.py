"""Offline sync protocol v1: change feed and pull, ordered idempotent push, merge policies."""

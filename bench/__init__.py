"""Benchmarks for `make bench`: sync push/pull and evidence uploads, on SQLite and PostgreSQL."""

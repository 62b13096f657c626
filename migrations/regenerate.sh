#!/usr/bin/env bash
# Until the first release there is one migration made from the models, plus hand-written ones
# for what autogenerate cannot see (the archive triggers). Run after a model change.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f migrations/versions/*_initial_schema.py
# hand-written migrations follow the initial one (their down_revision finds it by file name):
# keep them out of the way while autogenerate compares an empty database with the models
mkdir -p "$tmp/keep"
find migrations/versions -maxdepth 1 -name '*.py' -exec mv {} "$tmp/keep/" \;
FIELDSYNC_DATABASE_URL="sqlite:///$tmp/gen.db" .venv/bin/alembic revision --autogenerate -m "initial schema" >/dev/null
sed -i 's/astext_type=Text()/astext_type=sa.Text()/' migrations/versions/*.py
find "$tmp/keep" -maxdepth 1 -name '*.py' -exec mv {} migrations/versions/ \;
.venv/bin/ruff format -q migrations/versions
rm -rf "$tmp"
ls migrations/versions

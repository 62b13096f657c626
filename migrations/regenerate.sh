#!/usr/bin/env bash
# Until the first release there is one migration, made from the models. Run after a model change.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f migrations/versions/*.py
FIELDSYNC_DATABASE_URL="sqlite:///$tmp/gen.db" .venv/bin/alembic revision --autogenerate -m "initial schema" >/dev/null
sed -i 's/astext_type=Text()/astext_type=sa.Text()/' migrations/versions/*.py
.venv/bin/ruff format -q migrations/versions
rm -rf "$tmp"
ls migrations/versions

#!/usr/bin/env bash
# Creates .venv if needed, installs Firebreak with its test dependencies, runs the whole suite
# (SQLite and PostgreSQL; PostgreSQL from $FIREBREAK_TEST_PG, default 127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# One command to see Firebreak work: creates .venv if needed, installs Firebreak into it and
# runs `firebreak demo` (no network after the install, no tokens; see README.md).
# Arguments are passed to `firebreak demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
exec .venv/bin/firebreak demo "$@"

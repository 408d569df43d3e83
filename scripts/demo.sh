#!/usr/bin/env bash
# One command to see Firebreak work: creates .venv if needed, installs Firebreak into it and
# runs `firebreak demo` (no network after the install, no tokens; see README.md).
# The install runs again only when pyproject.toml changed since the last one (its hash is
# kept in .venv/.firebreak-install-stamp), so a second run starts at once.
# Arguments are passed to `firebreak demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.firebreak-install-stamp
wanted="$(python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' pyproject.toml)"
[ -x .venv/bin/python ] || python3 -m venv .venv
if [ ! -x .venv/bin/firebreak ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e .
  echo "$wanted" > "$stamp"
fi
exec .venv/bin/firebreak demo "$@"

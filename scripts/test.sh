#!/usr/bin/env bash
# The test suite, with all its set-up, exactly as CI runs it:
# - Debian's prometheus and prometheus-alertmanager (the integration tests start real ones);
# - Debian's chromium (the incident page tests open the pages in headless Chromium);
# - .venv with Firebreak and its test dependencies;
# - the local model for the tests marked real_llm (Qwen2.5-Coder 0.5B, 491 MB, downloaded once
#   into ~/.cache/firebreak/models, later runs only check it: scripts/local_llm.py);
# - ruff, mypy (scripts/typecheck.py), then pytest on SQLite and PostgreSQL ($FIREBREAK_TEST_PG, default
#   postgresql+asyncpg://postgres@127.0.0.1:5432/test). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${missing[*]} (Debian packages)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python scripts/local_llm.py fetch --model qwen2.5-coder-0.5b
.venv/bin/ruff check .
.venv/bin/python scripts/typecheck.py  # mypy, on the packages under their installed names
exec .venv/bin/python -m pytest "$@"

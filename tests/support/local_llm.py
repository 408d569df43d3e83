"""A real small LLM for tests marked `real_llm`: llama.cpp's OpenAI-compatible server on loopback.

The session-scoped fixture `local_llm` runs `scripts/local_llm.py serve` (Qwen2.5-Coder 0.5B,
Q4_K_M) on a free port, waits for `/health`, and yields a `LocalLLM`: `base_url` ends in `/v1`
(for the `openai` client and Firebreak's `openai` provider), `root_url` reaches llama.cpp's own
endpoints (`/tokenize`, `/props`), `model` is the name `/v1/models` lists.

The weights are not downloaded here: `scripts/test.sh` fetches them into the cache before the
tests run. When they are missing the fixture fails (it never skips: a skipped test would hide
that the model was never tried) and says which command to run.

Timing to expect: `/health` answers 3–6 s after start on 2 cores; a short chat completion takes
a second or two.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.promstack import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "local_llm.py"
MODEL = "qwen2.5-coder-0.5b"
N_CTX = 8192
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LocalLLM:
    base_url: str  # http://127.0.0.1:PORT/v1
    model: str
    root_url: str  # http://127.0.0.1:PORT
    n_ctx: int


@pytest.fixture(scope="session")
def local_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLLM]:
    cached = subprocess.run(
        [sys.executable, str(SCRIPT), "path", "--model", MODEL], capture_output=True, text=True
    )
    if cached.returncode != 0:
        pytest.fail(
            f"{MODEL} is not cached: run python scripts/local_llm.py fetch --model {MODEL}",
            pytrace=False,
        )
    port = free_port()
    root_url = f"http://127.0.0.1:{port}"
    stderr_path = tmp_path_factory.mktemp("local_llm") / "serve.stderr.log"
    argv = [sys.executable, str(SCRIPT), "serve", "--model", MODEL, "--port", str(port)]
    argv += ["--ctx", str(N_CTX)]
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        _wait_healthy(proc, f"{root_url}/health", stderr_path)
        yield LocalLLM(base_url=f"{root_url}/v1", model=MODEL, root_url=root_url, n_ctx=N_CTX)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, stderr_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"local_llm.py serve exited with code {proc.returncode}:\n{_tail(stderr_path)}",
                pytrace=False,
            )
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    pytest.fail(
        f"{url}: {last} after {READY_TIMEOUT_S:.0f} s:\n{_tail(stderr_path)}", pytrace=False
    )


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

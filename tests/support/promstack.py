"""Real Prometheus and Alertmanager processes for tests, on loopback, as context managers.

Why real servers: the bot's value is in talking to these systems correctly (PromQL step limits,
Alertmanager's at-least-once webhook with its exact payload). Fakes would encode our own
assumptions; the Debian binaries encode theirs.

- `run_prometheus(...)` yields `http://127.0.0.1:PORT` once `/-/ready` answers 200.
- `run_alertmanager(...)` yields its base URL once ready; it posts to `webhook_url`.
- `serve_metrics()` yields an `Exporter`: a prometheus-client HTTP endpoint whose gauges a test
  sets, so Prometheus scrapes values the test controls (alerts fire and resolve, series get a
  change point).

Processes are killed on exit; when start-up or the test fails, the tail of their stderr is
printed so the failing test shows why.

Timing to expect: both are ready in well under a second, but Prometheus only starts scraping
about 5 s after start (its discovery and scrape managers batch target updates on a fixed 5 s
tick, not configurable by flag), so wait for samples rather than sleeping a fixed time.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

PROMETHEUS_BIN = "/usr/bin/prometheus"
ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"
READY_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(path: str) -> str:
    found = shutil.which(path) or shutil.which(Path(path).name)
    if found is None:
        raise RuntimeError(f"{path} is not installed (Debian package prometheus / alertmanager)")
    return found


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no stderr captured)"


@contextlib.contextmanager
def _process(name: str, argv: list[str], workdir: Path, base_url: str) -> Iterator[str]:
    """Run argv, wait for `/-/ready`, yield the base URL, kill on exit (stderr tail on failure)."""
    stderr_path = workdir / f"{name}.stderr.log"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )
    ok = False
    try:
        _wait_ready(proc, f"{base_url}/-/ready", name)
        yield base_url
        ok = True
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if not ok:
            print(f"--- {name} stderr (tail) ---\n{_tail(stderr_path)}", file=sys.stderr)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last_error = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} before becoming ready")
        try:
            response = httpx.get(url, timeout=1.0)
            if response.status_code == 200:
                return
            last_error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last_error = repr(exc)
        time.sleep(0.05)
    raise RuntimeError(f"{name} not ready after {READY_TIMEOUT_S}s: {last_error}")


@contextlib.contextmanager
def run_prometheus(
    workdir: Path,
    *,
    scrape_targets: list[str] | None = None,
    rules: str | None = None,
    alertmanager_url: str | None = None,
    interval: str = "1s",
) -> Iterator[str]:
    """A Prometheus scraping `scrape_targets` ("host:port") every `interval`.

    `rules` is the text of a rule file (`groups: ...`), evaluated every `interval`; alerts go to
    `alertmanager_url` when given. Yields the base URL, e.g. `http://127.0.0.1:41234`.
    """
    workdir = Path(workdir) / "prometheus"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config: dict[str, object] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "test",
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": [{"targets": list(scrape_targets or [])}],
            }
        ],
    }
    if rules is not None:
        (workdir / "rules.yml").write_text(rules)
        config["rule_files"] = [str(workdir / "rules.yml")]
    if alertmanager_url is not None:
        target = alertmanager_url.split("://", 1)[-1].rstrip("/")
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    argv = [
        _binary(PROMETHEUS_BIN),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]
    with _process("prometheus", argv, workdir, f"http://127.0.0.1:{port}") as url:
        yield url


@contextlib.contextmanager
def run_alertmanager(
    workdir: Path,
    *,
    webhook_url: str,
    bearer_token: str | None = None,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> Iterator[str]:
    """An Alertmanager whose only receiver is a webhook to `webhook_url` (resolved included).

    Gossip is disabled (`--cluster.listen-address=`) so parallel tests never form a cluster.
    """
    workdir = Path(workdir) / "alertmanager"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    webhook: dict[str, object] = {"url": webhook_url, "send_resolved": True}
    if bearer_token is not None:
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": bearer_token}}
    config = {
        "route": {
            "receiver": "firebreak",
            "group_by": ["alertname"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": "firebreak", "webhook_configs": [webhook]}],
    }
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    argv = [
        _binary(ALERTMANAGER_BIN),
        f"--config.file={config_path}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    with _process("alertmanager", argv, workdir, f"http://127.0.0.1:{port}") as url:
        yield url


@dataclass
class Exporter:
    """A tiny metrics endpoint. `target` goes into `scrape_targets`; `set` changes a gauge."""

    target: str
    url: str
    registry: CollectorRegistry
    _gauges: dict[str, Gauge] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        """Set gauge `name` (created on first use; its label names are fixed then)."""
        labels = labels or {}
        with self._lock:
            gauge = self._gauges.get(name)
            if gauge is None:
                gauge = Gauge(name, f"test gauge {name}", sorted(labels), registry=self.registry)
                self._gauges[name] = gauge
        (gauge.labels(**labels) if labels else gauge).set(value)

    def remove(self, name: str, labels: dict[str, str]) -> None:
        """Drop one labelled child so its series goes stale in Prometheus."""
        self._gauges[name].remove(*[labels[k] for k in sorted(labels)])


@contextlib.contextmanager
def serve_metrics() -> Iterator[Exporter]:
    """Serve a fresh CollectorRegistry on a free loopback port for the duration of the block."""
    registry = CollectorRegistry()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield Exporter(
            target=f"127.0.0.1:{port}", url=f"http://127.0.0.1:{port}/metrics", registry=registry
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

"""The source registry: each config `type` names its backend, every backend is the interface
it is registered as, and loading a config with a cluster does not import the cluster client."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import httpx
import pytest

from firebreak.tools.breaker import SOURCE_BREAKER, BreakerConfig
from firebreak.tools.kube_config import KubernetesSource
from firebreak.tools.sources import (
    LOG_SOURCES,
    METRIC_SOURCES,
    ClusterSource,
    LogSource,
    MetricSource,
    SourcesConfig,
    breaker_configs,
    open_cluster,
    open_log_source,
    open_metric_source,
)

ENTRIES = {
    "loki": {"url": "http://loki:3100"},
    "elasticsearch": {"url": "http://es:9200"},
    "file": {"path": "/var/log/app/*.log"},
    "prometheus": {"url": "http://prometheus:9090"},
}


def kubeconfig(folder: Path) -> Path:
    path = folder / "kubeconfig"
    path.write_text(
        textwrap.dedent(
            """\
            apiVersion: v1
            kind: Config
            current-context: prod
            contexts: [{name: prod, context: {cluster: prod, user: me}}]
            clusters: [{name: prod, cluster: {server: "http://127.0.0.1:1"}}]
            users: [{name: me, user: {token: t}}]
            """
        )
    )
    return path


def test_each_type_names_the_backend_whose_config_declares_it() -> None:
    for kinds in (LOG_SOURCES, METRIC_SOURCES):
        for name, kind in kinds.items():
            (declared,) = typing.get_args(kind.config.model_fields["type"].annotation)
            assert declared == name


async def test_every_configured_source_opens_as_its_interface(tmp_path: Path) -> None:
    sources = SourcesConfig.model_validate(
        {
            "logs": [
                {"name": kind, "type": kind, **ENTRIES[kind]}
                for kind in ("loki", "elasticsearch", "file")
            ],
            "metrics": [{"name": "prom", "type": "prometheus", **ENTRIES["prometheus"]}],
            "kubernetes": [{"name": "prod", "kubeconfig": str(kubeconfig(tmp_path))}],
        }
    )
    assert [type(s).__name__ for s in sources.logs] == [
        "LokiSource",
        "ElasticsearchSource",
        "FileSource",
    ]
    async with httpx.AsyncClient() as http:
        for config in sources.logs:
            source = open_log_source(config, http=http)
            assert isinstance(source, LogSource) and source.name == config.name
        metrics = open_metric_source(sources.metrics[0], http=http)
        assert isinstance(metrics, MetricSource) and metrics.name == "prom"
    cluster = open_cluster(sources.kubernetes[0])
    assert isinstance(cluster, ClusterSource) and cluster.name == "prod"
    await cluster.aclose()


def test_an_unknown_type_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="'loki', 'elasticsearch', 'file'"):
        SourcesConfig.model_validate({"logs": [{"name": "x", "type": "splunk", "url": "u"}]})


def test_breakers_for_every_networked_source_and_no_file(tmp_path: Path) -> None:
    own = BreakerConfig(fail_max=2)
    sources = SourcesConfig(
        logs=[
            {"name": "loki", "type": "loki", "url": "http://loki", "circuit_breaker": own},
            {"name": "app", "type": "file", "path": "/tmp/*.log"},
        ],
        metrics=[{"name": "prom", "type": "prometheus", "url": "http://prom"}],
        kubernetes=[KubernetesSource(name="prod", kubeconfig=str(kubeconfig(tmp_path)))],
    )
    assert breaker_configs(sources) == {"loki": own, "prom": SOURCE_BREAKER, "prod": None}


def test_loading_a_config_with_a_cluster_imports_no_cluster_client(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "sources:\n"
        f"  kubernetes: [{{name: prod, kubeconfig: {kubeconfig(tmp_path)}}}]\n"
        "  logs: [{name: loki, type: loki, url: 'http://loki:3100'}]\n"
    )
    script = textwrap.dedent(
        f"""\
        import sys
        from firebreak.config import load_config
        config = load_config({str(config)!r})
        assert config.sources.kubernetes[0].name == "prod"
        clients = ("aiohttp", "kubernetes_asyncio")
        print(sorted(m for m in sys.modules if m.split(".")[0] in clients))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

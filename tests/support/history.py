"""A seeded incident history with known answers, for the similarity tests and bench/similar.py.

Each incident comes from an *archetype*: one failure (a root cause, said in several ways) of
one alert on a few services. Several archetypes share an alert and a service (a checkout
error-rate alert may be the database pool or a bad deploy), and one cause shows up under
several alerts, so neither the labels nor the words alone give the answer. A probe is a new
incident of a known archetype; the incidents of its archetype are the relevant answers (2 when
the service matches too, else 1). Novel probes come from archetypes the history never saw:
the right answer for them is nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, update

from firebreak.store.models import AnalysisRecord, Incident, IncidentGroup

SUMMARIES = {
    "HighErrorRate": "is failing requests",
    "HighLatency": "p99 latency above 2s",
    "PodCrashLooping": "pods are restarting",
    "KubePodNotReady": "pods not ready",
    "DiskFull": "volume almost full",
    "TargetDown": "scrape target down",
    "QueueBacklog": "queue backlog growing",
    "DatabaseConnectionsHigh": "too many database connections",
    "ClockSkewDetected": "node clock drift",
    "LicenseExpiring": "license check failing",
    "CertificateExpiring": "certificate expires soon",
}
NAMESPACES = {
    "checkout": "shop",
    "cart": "shop",
    "payments": "payments",
    "orders": "shop",
    "search": "discovery",
    "recommendations": "discovery",
    "auth": "identity",
    "users": "identity",
    "inventory": "supply",
    "shipping": "supply",
    "notifications": "messaging",
    "api-gateway": "edge",
}
FILLER = [  # some mention what other failures are about: words that match the wrong incidents
    "Observed during peak traffic.",
    "Started shortly after the nightly batch job.",
    "Several customers reported errors.",
    "Seen first in the eu region.",
    "The on-call engineer confirmed it in the dashboards.",
    "Database metrics looked normal.",
    "No deploy happened that day.",
    "Memory usage stayed flat.",
    "The redis cache and the upstream services were healthy.",
    "Latency of the other services was unaffected.",
    "",
]
# What the offline analyser says when it finds little: the same words for every failure.
OFFLINE = (
    "[Offline analysis] {alert} on {svc}: error lines in the logs started before the alert; "
    "no single cause stands out"
)


@dataclass(frozen=True)
class Archetype:
    name: str
    alertname: str
    services: tuple[str, ...]
    causes: tuple[str, ...]  # phrasings; {svc} and {n} are filled in
    weight: float = 1.0


ARCHETYPES = (
    Archetype(
        "db_pool",
        "HighErrorRate",
        ("checkout", "payments", "orders"),
        (
            "Database connection pool exhausted: {svc} could not get a postgres connection "
            "within 30s",
            "The postgres connection pool of {svc} was exhausted after a traffic spike; "
            "requests failed waiting for a connection",
            "Connection pool exhaustion against the primary database made {svc} return 500 errors",
        ),
        2.0,
    ),
    Archetype(
        "bad_deploy",
        "HighErrorRate",
        ("checkout", "cart", "search"),
        (
            "A bad deploy of {svc} version 2.{n}.0 introduced a NullPointerException in the "
            "request handler",
            "Release 2.{n}.1 of {svc} shipped a regression: NullPointerException on every request",
            "The rollout of {svc} 2.{n} broke request handling with a null pointer exception",
        ),
        2.0,
    ),
    Archetype(
        "provider_ratelimit",
        "HighErrorRate",
        ("payments", "checkout"),
        (
            "The external payment provider rate limited {svc} with HTTP 429 responses",
            "{svc} hit the payment provider's API rate limit (429 Too Many Requests)",
            "Calls to the third-party payment gateway were throttled: rate limit exceeded",
        ),
    ),
    Archetype(
        "cert_expired",
        "HighErrorRate",
        ("api-gateway", "auth"),
        (
            "The TLS certificate of {svc} expired; clients failed the handshake",
            "An expired x509 certificate on {svc} broke TLS handshakes",
            "TLS handshake failures because the {svc} certificate was not renewed in time",
        ),
    ),
    Archetype(
        "upstream_slow",
        "HighLatency",
        ("api-gateway", "checkout", "search"),
        (
            "The upstream inventory service answered slowly, so {svc} requests timed out",
            "Slow responses from the inventory upstream made {svc} wait until its timeout",
            "Upstream timeouts: inventory took over 5s per call from {svc}",
        ),
        1.5,
    ),
    Archetype(
        "gc_pauses",
        "HighLatency",
        ("search", "recommendations", "orders"),
        (
            "Long JVM garbage collection pauses in {svc} after the heap filled up",
            "Full GC pauses of several seconds stalled {svc}: the old generation was full",
            "{svc} spent most of its time in stop-the-world garbage collection",
        ),
    ),
    Archetype(
        "cpu_throttle",
        "HighLatency",
        ("checkout", "auth", "users"),
        (
            "CPU throttling: the {svc} containers hit their CPU limit of 500m",
            "{svc} pods were CPU throttled by their cgroup quota under load",
            "The CPU limit was too low for {svc}; the kernel throttled its containers",
        ),
    ),
    Archetype(
        "cache_cold",
        "HighLatency",
        ("recommendations", "search", "cart"),
        (
            "The redis cache was flushed and {svc} fell back to the database for every read",
            "A cold redis cache after a failover sent all {svc} reads to the database",
            "Redis evictions emptied the cache; {svc} cache hit ratio dropped to zero",
        ),
    ),
    Archetype(
        "oom",
        "PodCrashLooping",
        ("search", "recommendations", "inventory", "orders"),
        (
            "A memory leak made {svc} exceed its memory limit; the container was OOMKilled",
            "{svc} was OOMKilled repeatedly: heap usage grew until the limit",
            "Out of memory: the kernel killed {svc} (exit code 137) after memory grew steadily",
        ),
        1.5,
    ),
    Archetype(
        "config_missing",
        "PodCrashLooping",
        ("payments", "auth", "shipping"),
        (
            "A missing environment variable DATABASE_URL made {svc} exit at start-up",
            "{svc} crashed on boot: required configuration key missing from the ConfigMap",
            "The new ConfigMap lacked a setting {svc} needs, so it exited with a config error",
        ),
    ),
    Archetype(
        "node_pressure",
        "KubePodNotReady",
        ("inventory", "shipping", "notifications"),
        (
            "Node memory pressure evicted the {svc} pods",
            "The kubelet evicted {svc} pods because the node ran low on memory",
            "Evictions under node memory pressure left {svc} without ready pods",
        ),
    ),
    Archetype(
        "image_pull",
        "KubePodNotReady",
        ("users", "notifications", "cart"),
        (
            "ImagePullBackOff: the {svc} image tag did not exist in the registry",
            "{svc} could not pull its container image (registry returned not found)",
            "The registry credentials expired and {svc} pods stuck in ImagePullBackOff",
        ),
    ),
    Archetype(
        "logs_fill_disk",
        "DiskFull",
        ("orders", "inventory", "search"),
        (
            "Debug logging filled the {svc} data volume",
            "Log files grew without rotation until the {svc} disk was full",
            "The {svc} volume filled up with verbose debug logs; log rotation was off",
        ),
    ),
    Archetype(
        "wal_growth",
        "DiskFull",
        ("payments", "orders"),
        (
            "PostgreSQL WAL files piled up because a replication slot was inactive",
            "An inactive replication slot kept WAL segments; the database disk filled",
            "WAL growth from a stale logical replication slot filled the postgres volume",
        ),
    ),
    Archetype(
        "dns_failure",
        "TargetDown",
        ("api-gateway", "users", "notifications"),
        (
            "DNS resolution failures: CoreDNS was overloaded and {svc} could not resolve hosts",
            "CoreDNS timeouts made service discovery for {svc} fail",
            "{svc} failed to resolve internal names because the DNS pods were saturated",
        ),
    ),
    Archetype(
        "consumer_stuck",
        "QueueBacklog",
        ("notifications", "shipping", "orders"),
        (
            "The {svc} Kafka consumer group stopped committing offsets after a rebalance",
            "A stuck consumer in {svc} left the Kafka partition lag growing",
            "Kafka consumer lag: the {svc} consumers hung after a partition rebalance",
        ),
    ),
    Archetype(
        "lock_contention",
        "DatabaseConnectionsHigh",
        ("payments", "orders", "inventory"),
        (
            "A long-running migration held a table lock and {svc} connections piled up",
            "Lock contention on the orders table: {svc} queries waited on a long transaction",
            "An idle in transaction session held locks; {svc} opened connections until the max",
        ),
    ),
    Archetype(
        "pool_via_connections",
        "DatabaseConnectionsHigh",
        ("checkout", "payments"),
        (
            "The {svc} connection pool was sized above the database max_connections",
            "Connection pool misconfiguration in {svc} exhausted the postgres connection slots",
            "{svc} leaked database connections until the pool and the server were exhausted",
        ),
    ),
)
NOVEL = (
    Archetype(
        "clock_skew",
        "ClockSkewDetected",
        ("auth", "payments"),
        ("The NTP daemon on the nodes stopped; clocks drifted by 40s and tokens failed",),
    ),
    Archetype(
        "license",
        "LicenseExpiring",
        ("search",),
        ("The commercial search engine license lapsed and the cluster went read-only",),
    ),
)


@dataclass
class Seeded:
    """What was seeded: which archetype and service each incident id is."""

    archetype: dict[int, str] = field(default_factory=dict)
    service: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Probe:
    archetype: Archetype
    service: str
    title: str
    labels: dict[str, str]
    root_cause: str
    novel: bool = False

    def gain(self, archetype: str | None, service: str | None) -> int:
        if self.novel or archetype != self.archetype.name:
            return 0
        return 2 if service == self.service else 1


def _labels(archetype: Archetype, service: str, rng: random.Random) -> dict[str, str]:
    return {
        "alertname": archetype.alertname,
        "service": service,
        "severity": rng.choice(["critical", "warning"]),
        "namespace": NAMESPACES[service],
        "cluster": rng.choice(["prod-eu", "prod-us"]),
        "pod": f"{service}-{rng.randrange(16**6):06x}-{rng.randrange(16**5):05x}",
    }


def _cause(archetype: Archetype, service: str, rng: random.Random, offline: float = 0.0) -> str:
    if rng.random() < offline:
        return OFFLINE.format(alert=archetype.alertname, svc=service)
    text = rng.choice(archetype.causes).format(svc=service, n=rng.randrange(40))
    return f"{text[0].upper()}{text[1:]}. {rng.choice(FILLER)} {rng.choice(FILLER)}".strip()


def make_probe(
    archetype: Archetype, rng: random.Random, *, novel: bool = False, offline: float = 0.0
) -> Probe:
    service = rng.choice(archetype.services)
    return Probe(
        archetype=archetype,
        service=service,
        title=f"{archetype.alertname}: {service} {SUMMARIES[archetype.alertname]}",
        labels=_labels(archetype, service, rng),
        root_cause=_cause(archetype, service, rng, offline),
        novel=novel,
    )


def probes(count: int, seed: int = 7, novel: int = 0) -> list[Probe]:
    rng = random.Random(seed)
    weights = [a.weight for a in ARCHETYPES]
    known = [make_probe(rng.choices(ARCHETYPES, weights)[0], rng) for _ in range(count)]
    return known + [make_probe(rng.choice(NOVEL), rng, novel=True) for _ in range(novel)]


def seed_history(
    conn: Connection,
    count: int,
    *,
    seed: int = 1,
    end: datetime | None = None,
    days: int = 180,
    analysed: float = 0.9,
    offline: float = 0.25,
) -> Seeded:
    """`count` resolved incidents over `days` before `end`, 90% with an analysis, a quarter of
    those the offline analyser's say-nothing root cause."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC) - timedelta(hours=1)
    weights = [a.weight for a in ARCHETYPES]
    seeded = Seeded()
    starts = sorted(end - timedelta(seconds=rng.uniform(0, days * 86400)) for _ in range(count))
    for number, created in enumerate(starts):
        archetype = rng.choices(ARCHETYPES, weights)[0]
        probe = make_probe(archetype, rng, offline=offline)
        resolved = created + timedelta(minutes=rng.uniform(3, 240))
        incident_id = _insert(conn, probe, number, created, resolved, rng)
        if rng.random() < analysed:
            _analyse(conn, incident_id, probe.root_cause, resolved)
        seeded.archetype[incident_id] = archetype.name
        seeded.service[incident_id] = probe.service
    return seeded


def _insert(
    conn: Connection,
    probe: Probe,
    number: int,
    created: datetime,
    resolved: datetime,
    rng: random.Random,
) -> int:
    group_key = f'{{}}:{{alertname="{probe.labels["alertname"]}"}}#{number}'
    values: dict[str, Any] = {
        "group_key": group_key,
        "title": probe.title,
        "status": "resolved",
        "severity": probe.labels["severity"],
        "service": probe.service,
        "labels": probe.labels,
        "created_at": created,
        "updated_at": resolved,
        "acknowledged_at": created + timedelta(minutes=rng.uniform(1, 10)),
        "acknowledged_by": rng.choice(["U0ALICE", "U0BOB", "U0CAROL"]),
        "resolved_at": resolved,
        "resolved_by": rng.choice(["U0ALICE", "U0BOB", "alertmanager"]),
        "alert_count": 1,
        "truncated_alerts": 0,
        "escalation_level": 1,
    }
    incident_id = conn.scalar(insert(Incident).values(values).returning(Incident.id))
    assert incident_id is not None
    conn.execute(
        insert(IncidentGroup).values(
            incident_id=incident_id, group_key=group_key, status="resolved", joined_at=created
        )
    )
    return incident_id


def _analyse(conn: Connection, incident_id: int, root_cause: str, at: datetime) -> None:
    body = {
        "root_cause": root_cause,
        "reasoning": "Seeded history.",
        "mitigation": "Mitigated.",
        "prevention": "Prevented.",
        "recommendation": "Recommended.",
        "confidence_score": 70,
        "execution_status": "COMPLETED",
    }
    conn.execute(
        insert(AnalysisRecord).values(
            incident_id=incident_id,
            created_at=at,
            execution_status="COMPLETED",
            confidence_score=70,
            body=body,
            evidence={},
        )
    )
    conn.execute(update(Incident).where(Incident.id == incident_id).values(root_cause=root_cause))

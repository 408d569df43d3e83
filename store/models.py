"""Database tables. Queries live in the modules beside this one (one per domain), not here.

Timestamps are stored as timezone-aware UTC on both SQLite and PostgreSQL; JSON columns are
JSONB on PostgreSQL. Text columns are `SafeText` / `SafeString` (store/text.py): NUL, which
PostgreSQL refuses, is stored as U+FFFD on both back ends. One open incident per Alertmanager
group is enforced by a partial unique index, so two replicas racing on the same group cannot
both open one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from firebreak.store.text import SafeString, SafeText

BIND_CACHE = 1024  # distinct datetimes remembered per column and dialect


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes everywhere; SQLite would otherwise hand back naive ones.

    Binding is memoised per value: a storm's alert rows repeat the same few instants (the
    batch's `now`, the alerts' `startsAt`), and converting and formatting each of them was a
    sixth of the store writer's CPU. Equal datetimes are the same instant, which is
    all the conversion keeps, so a cached result is the right one for any equal value."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Any) -> Callable[[Any], Any] | None:
        process = super().bind_processor(dialect)
        return None if process is None else lru_cache(maxsize=BIND_CACHE)(process)

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDoc = JSON().with_variant(JSONB(), "postgresql")
Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # Every model here maps one Table (DeclarativeBase only promises a FromClause).
    __table__: ClassVar[Table]


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    group_key: Mapped[str | None] = mapped_column(SafeText)
    title: Mapped[str] = mapped_column(SafeText)
    status: Mapped[str] = mapped_column(SafeString(16))
    severity: Mapped[str] = mapped_column(SafeString(32))
    service: Mapped[str] = mapped_column(SafeString(200))
    labels: Mapped[dict[str, str]] = mapped_column(JSONDoc)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(SafeString(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(SafeString(64))
    alert_count: Mapped[int] = mapped_column(Integer, default=0)
    truncated_alerts: Mapped[int] = mapped_column(Integer, default=0)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    # The latest analysis's root cause, kept here for the similarity search (store/memory.py),
    # which reads thousands of incidents at a time and must not parse their analyses.
    root_cause: Mapped[str | None] = mapped_column(SafeText)

    __table_args__ = (
        Index(
            "uq_incidents_open_group",
            "group_key",
            unique=True,
            sqlite_where=text("status != 'resolved' AND group_key IS NOT NULL"),
            postgresql_where=text("status != 'resolved' AND group_key IS NOT NULL"),
        ),
        Index("ix_incidents_group_key_resolved", "group_key", "resolved_at"),
        Index("ix_incidents_status", "status"),
        Index("ix_incidents_created_at", "created_at"),  # correlation windows, stats
    )


class IncidentGroup(Base):
    """The Alertmanager groups an incident holds (incidents/ingest.py): its own first, then, with
    `correlation.merge`, the correlated groups that joined it. `status` is each group's last
    word; an incident resolves by Alertmanager only once every one of its groups has."""

    __tablename__ = "incident_groups"

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    group_key: Mapped[str] = mapped_column(SafeText, primary_key=True)
    status: Mapped[str] = mapped_column(SafeString(16))  # firing | resolved
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_incident_groups_group_key", "group_key"),)


class IncidentLink(Base):
    """Two incidents correlated by `correlation` (the same label values, opened within its
    window), stored both ways when the later one opens, so each card can name the other."""

    __tablename__ = "incident_links"

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    related_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(SafeString(128))
    status: Mapped[str] = mapped_column(SafeString(16))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    labels: Mapped[dict[str, str]] = mapped_column(JSONDoc)
    annotations: Mapped[dict[str, str]] = mapped_column(JSONDoc)
    generator_url: Mapped[str] = mapped_column(SafeText, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("incident_id", "fingerprint"),)


class TimelineEvent(Base):
    __tablename__ = "timeline_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    type: Mapped[str] = mapped_column(SafeString(40))
    actor: Mapped[str] = mapped_column(SafeString(64))
    message: Mapped[str] = mapped_column(SafeText)
    data: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)


class AnalysisRecord(Base):
    """Every analysis ever made for an incident; the API shows the latest."""

    __tablename__ = "analyses"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    execution_status: Mapped[str] = mapped_column(SafeString(32))
    confidence_score: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)  # all gathered
    run_id: Mapped[str | None] = mapped_column(SafeString(64), unique=True)  # one per run, ever


class AnalysisFeedback(Base):
    """A person's verdict on one analysis (store/feedback.py): `correct`, or `wrong` with the
    cause they found. Rows are only added: the latest per analysis is the verdict, the earlier
    ones are its history (each is also a `FEEDBACK` timeline event)."""

    __tablename__ = "analysis_feedback"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"))
    run_id: Mapped[str | None] = mapped_column(SafeString(64))  # the judged analysis's run
    verdict: Mapped[str] = mapped_column(SafeString(16))  # correct | wrong
    actual_cause: Mapped[str | None] = mapped_column(SafeText)
    by: Mapped[str] = mapped_column(SafeString(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_analysis_feedback_analysis_id", "analysis_id", "id"),)


class InvestigationRun(Base):
    """One run of the investigation graph; its checkpoints live under `thread_id`.

    `running` runs found at start were interrupted by a crash and are resumed; a run
    `awaiting_approval` is paused at a remediation proposal until a human decides.
    """

    __tablename__ = "investigations"

    thread_id: Mapped[str] = mapped_column(SafeString(64), primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(SafeString(24))  # see RunStatus
    actor: Mapped[str] = mapped_column(SafeString(64))
    reason: Mapped[str] = mapped_column(SafeText)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)  # a human's, once taken
    owner: Mapped[str | None] = mapped_column(SafeString(128))  # the process running it
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # its owner is alive
    # Times the run was resumed after the store failed under it (agents/runner.py); bounded.
    store_retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (Index("ix_investigations_status", "status"),)


class SlackMessage(Base):
    """Where an incident's messages live in Slack, so the card is updated, never re-posted."""

    __tablename__ = "slack_messages"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(SafeString(32))  # card | rca | page | ...
    channel: Mapped[str] = mapped_column(SafeString(32))
    ts: Mapped[str] = mapped_column(SafeString(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_slack_messages_incident_purpose", "incident_id", "purpose"),)


class SlackPostIntent(Base):
    """A message about to be posted, written before `chat.postMessage` and removed with the
    record of the post (bot/slack_outbox.py): a row still here means an earlier attempt may
    have posted it, so the next attempt first looks for it in Slack by `key`, which the message
    carries in its metadata, instead of posting it again."""

    __tablename__ = "slack_post_intents"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(SafeString(32))  # card
    channel: Mapped[str] = mapped_column(SafeString(32))
    key: Mapped[str] = mapped_column(SafeString(64), unique=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("incident_id", "purpose"),)


class EscalationState(Base):
    """The source of truth for a running ladder; scheduler jobs are reconciled from it."""

    __tablename__ = "escalations"

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    policy: Mapped[dict[str, Any]] = mapped_column(JSONDoc)  # snapshot taken at open
    level: Mapped[int] = mapped_column(Integer, default=0)  # last level paged, 0 = none
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None = stopped
    step: Mapped[int] = mapped_column(Integer, default=0)  # exactly-once token, bumps per step


class SlackOutbox(Base):
    """What must still be said in Slack: written first, delivered by the outbox drainer.

    ``lane`` orders delivery: messages of one incident (``incident:7``) or one DM
    (``dm:U123``) go out in ``id`` order; lanes are independent. Card rows carry no text:
    the card is rendered from the incident when it is delivered, so it is always current.
    """

    __tablename__ = "slack_outbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lane: Mapped[str] = mapped_column(SafeString(64))
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(SafeString(16))  # card | thread | dm | message | file
    purpose: Mapped[str] = mapped_column(SafeString(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    status: Mapped[str] = mapped_column(SafeString(16))  # pending | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(SafeText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_slack_outbox_status_next", "status", "next_attempt_at"),)


class DedupKey(Base):
    """Keys already handled, shared by all replicas: `kind` says whose (`store/dedup.py`).

    A key tied to an incident (`incident_id`) lives as long as the incident and goes with it
    (store/retention.py); the others are pruned by age by the kind that wrote them."""

    __tablename__ = "dedup_keys"

    kind: Mapped[str] = mapped_column(SafeString(32), primary_key=True)
    key: Mapped[str] = mapped_column(SafeString(255), primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class SlackLease(Base):
    """A named lease (the outbox drainer's): one replica at a time holds it until it expires."""

    __tablename__ = "slack_leases"

    name: Mapped[str] = mapped_column(SafeString(64), primary_key=True)
    owner: Mapped[str] = mapped_column(SafeString(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IncidentReminder(Base):
    """Reminders sent for an acknowledged, unresolved incident; `sent` is the exactly-once
    token of the reminder job (a reminder is recorded by `sent = n + 1 WHERE sent = n`)."""

    __tablename__ = "incident_reminders"

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    sent: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RemediationRun(Base):
    """One approved remediation: the source of truth its scheduler jobs are reconciled from.

    `phase` walks scheduled -> executing -> verify -> done; `next_at` is when the next phase is
    due (None = nothing due); `step` bumps on every phase change and is the exactly-once token.
    The action definition is snapshotted at approval: what was approved is what runs.
    """

    __tablename__ = "remediation_runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(SafeString(200))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    parameters: Mapped[dict[str, str]] = mapped_column(JSONDoc)
    reason: Mapped[str] = mapped_column(SafeText, default="")
    approved_by: Mapped[str] = mapped_column(SafeString(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    phase: Mapped[str] = mapped_column(SafeString(16))
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    step: Mapped[int] = mapped_column(Integer, default=0)
    ok: Mapped[bool | None] = mapped_column(Boolean)
    output: Mapped[str] = mapped_column(SafeText, default="")
    verified: Mapped[bool | None] = mapped_column(Boolean)
    approval_key: Mapped[str | None] = mapped_column(SafeString(64), unique=True)  # one run each

    __table_args__ = (Index("ix_remediation_runs_next_at", "next_at"),)


class BreakerOverride(Base):
    """An operator's latest action on one circuit breaker (store/breakers.py). `version` grows
    with every write, so each replica applies each action once."""

    __tablename__ = "breaker_overrides"

    name: Mapped[str] = mapped_column(SafeString(200), primary_key=True)
    action: Mapped[str] = mapped_column(SafeString(8))  # open | close | reset
    version: Mapped[int] = mapped_column(Integer)
    changed_by: Mapped[str] = mapped_column(SafeString(200))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IncidentSilence(Base):
    """The Alertmanager silence an incident's group is under, as the card shows it (store/
    oncall.py). One per incident: a new silence replaces the row (and the old silence is
    expired); Unsilence deletes it. A row whose `ends_at` has passed is not shown."""

    __tablename__ = "incident_silences"

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    silence_id: Mapped[str] = mapped_column(SafeString(64))
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(SafeString(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StoreProbe(Base):
    """The store writer's probe (store/health.py): while commits fail for the store's sake,
    the writer rewrites this row now and then; the first rewrite that commits says the store
    takes writes again. `room` is what makes it a write that needs space (random bytes, which
    PostgreSQL cannot compress away)."""

    __tablename__ = "store_probes"

    name: Mapped[str] = mapped_column(SafeString(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    room: Mapped[bytes] = mapped_column(LargeBinary)

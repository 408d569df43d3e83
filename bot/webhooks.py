"""`POST /webhooks/alertmanager`: validate, store durably, answer; never wait for slow work.

Status codes are chosen for Alertmanager's retry logic: 4xx for input that will never become
valid (it is not retried), 5xx only when storing failed (it is retried, and ingestion is
idempotent, so a retry is harmless). Text that would make the store fail (NUL) is repaired
rather than refused where refusing would lose a page; the payload model decides, per field. A
store that is away (down, restarting, out of disk: store/health.py) answers 503
`store_unavailable` with `Retry-After`, in JSON like every other error; nothing was
acknowledged, so Alertmanager keeps the notification and sends it again.
"""

from __future__ import annotations

import time

import structlog
from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from firebreak.bot import auth
from firebreak.bot.errors import PayloadTooLarge, error_response, read_body, validation_response
from firebreak.store.health import describe, is_outage
from firebreak.store.payloads import AlertmanagerPayload

log = structlog.get_logger(__name__)

STORE_RETRY_AFTER_S = 5


async def alertmanager_webhook(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    metrics = runtime.metrics
    started = time.perf_counter()
    if (response := auth.refused(request, runtime.secrets.webhook_token)) is not None:
        return _rejected(request, "unauthorized", response)
    try:
        body = await read_body(request, runtime.config.server.max_body_bytes)
        payload = AlertmanagerPayload.model_validate_json(body)
    except PayloadTooLarge as exc:
        return _rejected(request, "too_large", error_response(413, "payload_too_large", str(exc)))
    except ClientDisconnect:
        return error_response(400, "client_disconnected", "the request body was not complete")
    except ValidationError as exc:
        return _rejected(request, "invalid", validation_response(exc))

    try:
        outcome = await runtime.ingest(payload)
    except Exception as exc:
        if not is_outage(exc):
            raise
        metrics.webhook_rejected.labels("store_unavailable").inc()
        log.warning("webhook not stored: the store is unavailable", error=describe(exc))
        return JSONResponse(
            {"error": "store_unavailable", "detail": f"not stored, send again: {describe(exc)}"},
            status_code=503,
            headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
        )
    for alert in payload.alerts:
        metrics.alerts_received.labels(alert.status).inc()
    metrics.webhook_latency.observe(time.perf_counter() - started)
    answer = {
        "status": "stored" if outcome.incident_id is not None else "ignored",
        "incident_id": outcome.incident_id,
        "alerts_written": outcome.alerts_written,
    }
    if payload.repaired:
        _repaired(request, payload.repaired)
        answer["repaired"] = payload.repaired
    return JSONResponse(answer)


def _repaired(request: Request, fields: list[str]) -> None:
    """Stored with NUL replaced: counted and logged, so the sender's bug is seen although the
    alert was accepted (it must page; see `store/payloads.py`)."""
    request.app.state.runtime.metrics.webhook_repaired.labels("nul").inc()
    log.warning(
        "webhook input repaired",
        problem="NUL replaced by U+FFFD",
        fields=fields[:20],
        client=request.client.host if request.client else None,
    )


def _rejected(request: Request, reason: str, response: JSONResponse) -> JSONResponse:
    """Counted and logged (never with the token): a misconfigured Alertmanager shows up in
    the log, not only in `firebreak_webhook_rejected_total`."""
    request.app.state.runtime.metrics.webhook_rejected.labels(reason).inc()
    log.warning(
        "webhook rejected",
        reason=reason,
        status=response.status_code,
        detail=bytes(response.body).decode()[:500],
        client=request.client.host if request.client else None,
    )
    return response

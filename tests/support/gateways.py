"""The LLM gateway the tests point at a scripted server: a short timeout and fast backoff, so
retries cost milliseconds; each test overrides what it is about."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from firebreak.tools.llm import LLMGateway
from tests.fakes.llm_servers import ScriptedLLMServer

API_KEY = "sk-test-0123456789abcdefghijklmnop"


def gateway_for(
    server: ScriptedLLMServer, registry: CollectorRegistry | None = None, **overrides: Any
) -> LLMGateway:
    """A gateway to `server` in its own flavour; its metrics on `registry` (a fresh one if
    None)."""
    params: dict[str, Any] = {
        "provider": server.flavour,
        "model": "test-model",
        "base_url": server.base_url,
        "api_key": API_KEY,
        "timeout_s": 5.0,
        "transient_retries": 2,
        "fail_max": 5,
        "registry": registry or CollectorRegistry(),
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
    }
    return LLMGateway(**(params | overrides))

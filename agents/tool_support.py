"""Can the configured model call tools at all? Tools are offered only to one that does; a
server that refuses them (HTTP 400) is asked again without."""

from __future__ import annotations

import httpx

__all__ = ["is_tools_refusal", "supports_tools"]


async def supports_tools(
    provider: str,
    base_url: str,
    model: str,
    *,
    http: httpx.AsyncClient | None = None,
    timeout_s: float = 5.0,
) -> bool:
    """Whether the configured model takes tools.

    Ollama says so: `/api/show` lists `capabilities` (older servers without the list: a chat
    template that mentions `.Tools`). An unreachable server or unknown model: False (the
    investigation goes on without tools and reports the LLM error the usual way).
    OpenAI-compatible servers have no such listing: True, and a 400 answer to the first
    request with tools (`is_tools_refusal`) means "no tools": ask again without them.
    """
    if provider == "openai":
        return True
    if provider != "ollama":
        return False
    owned = http is None
    client = http or httpx.AsyncClient(timeout=timeout_s)
    try:
        response = await client.post(
            base_url.rstrip("/") + "/api/show", json={"model": model}, timeout=timeout_s
        )
        if response.status_code != 200:
            return False
        shown = response.json()
    except (httpx.HTTPError, ValueError):
        return False
    finally:
        if owned:
            await client.aclose()
    if not isinstance(shown, dict):
        return False
    capabilities = shown.get("capabilities")
    if isinstance(capabilities, list):
        return "tools" in capabilities
    return ".Tools" in str(shown.get("template") or "")


def is_tools_refusal(exc: BaseException) -> bool:
    """An HTTP 400 answer (anywhere in the exception's cause chain: `openai.BadRequestError`,
    `ollama.ResponseError`, httpx, or the LLM gateway's wrapper) to a request that offered
    tools: the model or server takes no tools."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        status = getattr(current, "status_code", None)
        if status is None:
            status = getattr(getattr(current, "response", None), "status_code", None)
        if status == 400:
            return True
        current = current.__cause__ or current.__context__
    return False

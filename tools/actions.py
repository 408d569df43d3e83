"""Run allowlisted remediation actions: an HTTP call or a command, never a shell.

Why these choices:
- Parameters come from an LLM's proposal (and, through it, from alert text anyone can make an
  alert carry), so they are validated against their configured pattern (whole match) and
  substituted with no evaluation: `{{ name }}` placeholders are replaced by plain string
  substitution, not a template engine, so a value cannot reach template logic.
- A value starting with `-` is refused whatever the pattern says, so a placeholder never
  becomes an option (`--help`, `-rf`, `--upload-pack=…`) wherever it stands in argv. argv is
  not rewritten with a `--` before placeholders: in `-n {{ namespace }}` the value belongs to
  the option, and many programs take `--` as an operand; with no value able to start with `-`,
  every placeholder is an operand or an option's value, as the argv template wrote it.
- Commands run with `asyncio.create_subprocess_exec`: the argv template is split once, in the
  configuration, and a parameter only ever becomes (part of) ONE argv item. `; rm -rf /` is then
  an argument like any other, never shell syntax.
- The child gets a minimal environment (PATH, HOME, LANG), not the bot's own: its tokens
  (SLACK_BOT_TOKEN, OPENAI_API_KEY...) stay out of reach of the action.
- In URLs a value is percent-encoded (`/`, `?`, `#`, `&` included), so it cannot change the
  path or add query parameters; in headers CR/LF are refused; in a JSON body it is escaped as
  JSON string content.
- Both executors return `(ok, output)` and never raise for a failed action: a timeout, a
  refused connection or a non-zero exit is `ok=False` with the reason as output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote

import httpx

from firebreak.tools.config import RemediationAction
from firebreak.tools.safe_regex import PatternError, compile_untrusted

__all__ = [
    "MAX_OUTPUT_BYTES",
    "ActionError",
    "check_proposal",
    "child_env",
    "render_argv",
    "render_body",
    "render_headers",
    "render_url",
    "run_action",
    "run_command",
    "run_http",
    "validate_parameters",
]

MAX_OUTPUT_BYTES = 64 * 1024  # read at most this much of a command's output or HTTP body
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_CHILD_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")


class ActionError(ValueError):
    """The action or its parameters are not acceptable; nothing was run."""


def check_proposal(
    actions: Sequence[RemediationAction], name: str, parameters: Iterable[tuple[str, str]]
) -> tuple[RemediationAction, dict[str, str]]:
    """The one rule for what may be proposed and what may run: the allowlisted action named
    `name` and its checked parameters. Raises ActionError naming the problem."""
    action = next((a for a in actions if a.name == name), None)
    if action is None:
        raise ActionError(f"action {name!r} is not on the allowlist")
    values: dict[str, str] = {}
    for key, value in parameters:
        if key in values:
            raise ActionError(f"parameter {key!r} given twice")
        values[key] = value
    return action, validate_parameters(action, values)


def validate_parameters(action: RemediationAction, values: Mapping[str, str]) -> dict[str, str]:
    """The parameters, checked: every declared one present, not starting with `-` and matching
    its pattern (whole value), none undeclared. Raises ActionError naming the problem."""
    declared = {p.name: p for p in action.parameters}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ActionError(f"unknown parameters {', '.join(unknown)} for action {action.name!r}")
    checked: dict[str, str] = {}
    for name, param in declared.items():
        if name not in values:
            raise ActionError(f"parameter {name!r} missing for action {action.name!r}")
        value = values[name]
        if isinstance(value, str) and value.startswith("-"):
            raise ActionError(
                f"parameter {name!r} of action {action.name!r} starts with '-': refused whatever "
                "the pattern, so that a value never poses as an option"
            )
        if not isinstance(value, str) or not _matches(param.pattern, value):
            raise ActionError(
                f"parameter {name!r} of action {action.name!r} does not match {param.pattern}"
            )
        checked[name] = value
    return checked


def _matches(pattern: str, value: str) -> bool:
    """Whole-value match on RE2: the value is the model's, and `re` could backtrack on it."""
    try:
        return compile_untrusted(pattern).fullmatch(value) is not None
    except PatternError:
        return False


def _substitute(template: str, values: Mapping[str, str], encode: object = None) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ActionError(f"template uses {{{{ {name} }}}}, which is not a parameter")
        value = values[name]
        return encode(value) if callable(encode) else value

    return PLACEHOLDER.sub(replace, template)


def render_argv(argv: list[str], values: Mapping[str, str]) -> list[str]:
    """Each template item gives exactly one argv item, whatever the values contain."""
    if not argv:
        raise ActionError("command action without argv")
    rendered = [_substitute(item, values) for item in argv]
    if any("\x00" in item for item in rendered):
        raise ActionError("NUL byte in an argument")
    return rendered


def render_url(url: str, values: Mapping[str, str]) -> str:
    return _substitute(url, values, lambda v: quote(v, safe=""))


def render_headers(headers: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    rendered = {k: _substitute(v, values) for k, v in headers.items()}
    for key, value in rendered.items():
        if "\r" in value or "\n" in value:
            raise ActionError(f"header {key!r} would contain a line break")
    return rendered


def render_body(body: str | None, values: Mapping[str, str], *, json_body: bool) -> str | None:
    if body is None:
        return None
    if json_body:
        return _substitute(body, values, lambda v: json.dumps(v)[1:-1])
    return _substitute(body, values)


def _is_json(headers: Mapping[str, str], body: str | None) -> bool:
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if content_type:
        return "json" in content_type.lower()
    return body is not None and body.lstrip()[:1] in {"{", "["}


async def run_http(
    action: RemediationAction,
    values: Mapping[str, str],
    *,
    client: httpx.AsyncClient | None = None,
) -> tuple[bool, str]:
    """One HTTP request; ok when the answer is 2xx. Output: status line and body start."""
    if not action.url:
        return False, "http action without url"
    try:
        url = render_url(action.url, values)
        headers = render_headers(action.headers, values)
        json_body = _is_json(action.headers, action.body)
        body = render_body(action.body, values, json_body=json_body)
    except ActionError as exc:
        return False, str(exc)
    if body is not None and json_body and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    owned = client is None
    http = client or httpx.AsyncClient()
    try:
        async with asyncio.timeout(action.timeout_s):
            response = await http.request(
                action.method.upper(),
                url,
                headers=headers,
                content=body.encode() if body is not None else None,
                timeout=action.timeout_s,
                follow_redirects=False,
            )
    except TimeoutError:
        return False, f"timed out after {action.timeout_s:g}s"
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        if owned:
            await http.aclose()
    text = response.content[:MAX_OUTPUT_BYTES].decode("utf-8", errors="replace")
    ok = 200 <= response.status_code < 300
    return ok, f"HTTP {response.status_code} {response.reason_phrase}\n{text}".rstrip()


def child_env() -> dict[str, str]:
    """The environment a child of Firebreak gets: enough to run, none of the bot's secrets."""
    return {k: os.environ[k] for k in _CHILD_ENV if k in os.environ}


async def run_command(argv: list[str], *, timeout_s: float) -> tuple[bool, str]:
    """Run argv directly (no shell), stdout and stderr merged; ok when it exits 0.

    On timeout the whole process group is killed (the child may have children of its own)."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=child_env(),
            start_new_session=True,
        )
    except OSError as exc:
        return False, f"could not start {argv[0]!r}: {exc.strerror or exc}"
    assert process.stdout is not None
    try:
        async with asyncio.timeout(timeout_s):
            output = await process.stdout.read(MAX_OUTPUT_BYTES)
            # drain (and drop) whatever is beyond the limit so the child never blocks on a pipe
            while await process.stdout.read(65536):
                pass
            code = await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return False, f"timed out after {timeout_s:g}s (killed)"
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        raise
    text = output.decode("utf-8", errors="replace").rstrip()
    return code == 0, (f"{text}\n" if text else "") + f"exit status {code}"


async def run_action(action: RemediationAction, values: Mapping[str, str]) -> tuple[bool, str]:
    """Validate the parameters and run the action; (ok, raw output) — redact before showing."""
    try:
        checked = validate_parameters(action, values)
    except ActionError as exc:
        return False, str(exc)
    if action.kind == "http":
        return await run_http(action, checked)
    try:
        argv = render_argv(action.argv, checked)
    except ActionError as exc:
        return False, str(exc)
    return await run_command(argv, timeout_s=action.timeout_s)

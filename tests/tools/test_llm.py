"""The LLM gateway against scripted OpenAI / Ollama servers, with the real clients, over sockets."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from firebreak.tools.config import LLMConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `tests.fakes` without a conftest

from firebreak.tools.breaker import BreakerBoard, BreakerConfig
from firebreak.tools.llm import LLMCallError, LLMGateway, LLMUnavailable, estimate_tokens
from tests.fakes.llm_servers import (
    ScriptedLLMServer,
    answer,
    closed_port_url,
    fixture_llm_server,  # noqa: F401  (registers the `llm_server` fixture)
    http_error,
    invalid_json,
    slow,
    tool_call,
)
from tests.support.gateways import API_KEY
from tests.support.gateways import gateway_for as shared_gateway

SCHEMA = {
    "type": "object",
    "properties": {"root_cause": {"type": "string"}},
    "required": ["root_cause"],
    "additionalProperties": False,
}
MESSAGES = [
    {"role": "system", "content": "You are a test."},
    {"role": "user", "content": "What broke?"},
]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def gateway_for(
    server: ScriptedLLMServer, registry: CollectorRegistry, **overrides: object
) -> LLMGateway:
    """The shared test gateway, with a breaker that stays open a minute."""
    return shared_gateway(server, registry, **({"reset_timeout_s": 60.0} | overrides))


def state(registry: CollectorRegistry, dependency: str) -> float | None:
    return registry.get_sample_value("firebreak_circuit_breaker_state", {"dependency": dependency})


def calls(registry: CollectorRegistry, provider: str, outcome: str) -> float:
    value = registry.get_sample_value(
        "firebreak_llm_calls_total", {"provider": provider, "outcome": outcome}
    )
    return value or 0.0


async def test_complete_json_sends_the_schema_and_returns_the_raw_text(llm_server, registry):
    llm_server.script(answer({"root_cause": "disk full"}))
    async with gateway_for(llm_server, registry) as gateway:
        text = (await gateway.complete_json(MESSAGES, SCHEMA)).text

    assert text == '{"root_cause": "disk full"}'
    body = llm_server.body()
    assert body["model"] == "test-model"
    assert body["messages"] == MESSAGES
    if llm_server.flavour == "openai":
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "root_cause_analysis", "strict": True, "schema": SCHEMA},
        }
        assert llm_server.chat_requests[-1].headers["Authorization"] == f"Bearer {API_KEY}"
    else:
        assert body["format"] == SCHEMA
        assert body["stream"] is False
        assert body["options"]["temperature"] == 0.0
    assert calls(registry, llm_server.flavour, "ok") == 1
    assert state(registry, f"llm:{llm_server.flavour}") == 0


async def test_complete_text_sends_no_schema(llm_server, registry):
    llm_server.script(answer("The database ran out of connections (see L3)."))
    async with gateway_for(llm_server, registry) as gateway:
        text = (await gateway.complete_text(MESSAGES)).text

    assert text == "The database ran out of connections (see L3)."
    assert "response_format" not in llm_server.body()
    assert llm_server.body().get("format") in (None, "")


async def test_invalid_json_is_returned_as_is_for_the_caller_to_validate(llm_server, registry):
    llm_server.script(invalid_json("not json at all"))
    async with gateway_for(llm_server, registry) as gateway:
        assert (await gateway.complete_json(MESSAGES, SCHEMA)).text == "not json at all"
    assert llm_server.chat_calls == 1


async def test_transient_errors_are_retried_with_backoff(llm_server, registry):
    llm_server.script(http_error(500), http_error(503), answer({"root_cause": "ok"}))
    async with gateway_for(llm_server, registry, transient_retries=2) as gateway:
        text = (await gateway.complete_json(MESSAGES, SCHEMA)).text

    assert text == '{"root_cause": "ok"}'
    assert llm_server.chat_calls == 3
    assert calls(registry, llm_server.flavour, "server_error") == 2
    assert gateway.breaker.consecutive_failures == 0  # the success reset it


async def test_retries_are_bounded(llm_server, registry):
    llm_server.default = http_error(500)
    async with gateway_for(llm_server, registry, transient_retries=2) as gateway:
        with pytest.raises(LLMUnavailable) as caught:
            await gateway.complete_json(MESSAGES, SCHEMA)

    assert caught.value.kind == "prolonged"  # a transient error that lasted through retries
    assert "server_error" in str(caught.value)
    assert caught.value.tries == 3
    assert llm_server.chat_calls == 3
    assert gateway.breaker.consecutive_failures == 3  # each try counted by the breaker


async def test_rate_limit_is_transient(registry):
    with ScriptedLLMServer("openai") as server:
        server.script(
            http_error(429, "Rate limit reached", headers={"Retry-After": "0"}),
            answer({"root_cause": "ok"}),
        )
        async with gateway_for(server, registry) as gateway:
            assert (await gateway.complete_json(MESSAGES, SCHEMA)).text == '{"root_cause": "ok"}'
        assert server.chat_calls == 2
        assert calls(registry, "openai", "rate_limited") == 1


async def test_client_errors_are_not_retried_and_do_not_trip_the_breaker(llm_server, registry):
    llm_server.default = http_error(400, "model does not support response_format")
    async with gateway_for(llm_server, registry, fail_max=2) as gateway:
        for _ in range(3):
            with pytest.raises(LLMCallError) as caught:
                await gateway.complete_json(MESSAGES, SCHEMA)
            assert caught.value.kind == "bad_request"
        assert gateway.breaker_state == "closed"
    assert llm_server.chat_calls == 3


async def test_timeout_is_a_deadline_for_the_whole_call(llm_server, registry):
    llm_server.default = slow(10.0, {"root_cause": "too late"})
    async with gateway_for(llm_server, registry, timeout_s=0.5, transient_retries=3) as gateway:
        started = time.monotonic()
        with pytest.raises(LLMUnavailable) as caught:
            await gateway.complete_json(MESSAGES, SCHEMA)
        elapsed = time.monotonic() - started

    assert caught.value.kind == "timeout"
    assert 0.4 <= elapsed < 2.0
    assert llm_server.chat_calls == 1  # no time was left for a retry
    assert gateway.breaker.consecutive_failures == 1


@pytest.mark.parametrize("flavour", ["openai", "ollama"])
async def test_unreachable_server_is_retried_then_unavailable(flavour, registry):
    url = closed_port_url(flavour)
    async with LLMGateway(
        provider=flavour,
        model="m",
        base_url=url,
        timeout_s=5,
        transient_retries=2,
        registry=registry,
        backoff_base_s=0.01,
    ) as gateway:
        with pytest.raises(LLMUnavailable) as caught:
            await gateway.complete_json(MESSAGES, SCHEMA)
    assert caught.value.kind == "prolonged"
    assert "unreachable" in str(caught.value)
    assert caught.value.tries == 3
    assert calls(registry, flavour, "unreachable") == 3


async def test_breaker_opens_then_fails_fast_without_calling(llm_server, registry):
    llm_server.default = http_error(500)
    dependency = f"llm:{llm_server.flavour}"
    async with gateway_for(llm_server, registry, fail_max=3, transient_retries=0) as gateway:
        kinds = []
        for _ in range(3):
            with pytest.raises(LLMUnavailable) as caught:
                await gateway.complete_json(MESSAGES, SCHEMA)
            kinds.append(caught.value.kind)
        assert kinds == ["transient", "transient", "circuit_open"]  # the 3rd tripped it
        assert gateway.breaker_state == "open"
        assert state(registry, dependency) == 2
        assert llm_server.chat_calls == 3

        durations = []
        for _ in range(20):
            started = time.perf_counter()
            with pytest.raises(LLMUnavailable) as caught:
                await gateway.complete_json(MESSAGES, SCHEMA)
            durations.append(time.perf_counter() - started)
            assert caught.value.kind == "circuit_open"
            assert "circuit breaker is open" in str(caught.value)
        with pytest.raises(LLMUnavailable):
            await gateway.complete_text(MESSAGES)

    assert llm_server.chat_calls == 3  # nothing more reached the server
    assert min(durations) < 0.001
    assert max(durations) < 0.1  # generous
    assert calls(registry, llm_server.flavour, "circuit_open") == 21


async def test_breaker_half_opens_after_reset_timeout_and_closes_on_success(llm_server, registry):
    llm_server.script(http_error(500), http_error(500), answer({"root_cause": "back"}))
    dependency = f"llm:{llm_server.flavour}"
    async with gateway_for(
        llm_server, registry, fail_max=2, transient_retries=0, reset_timeout_s=0.2
    ) as gateway:
        for _ in range(2):
            with pytest.raises(LLMUnavailable):
                await gateway.complete_json(MESSAGES, SCHEMA)
        assert state(registry, dependency) == 2
        await asyncio.sleep(0.25)
        assert (await gateway.complete_json(MESSAGES, SCHEMA)).text == '{"root_cause": "back"}'
        assert gateway.breaker_state == "closed"
    assert state(registry, dependency) == 0
    assert llm_server.chat_calls == 3


async def test_slow_calls_trip_the_breaker_too(llm_server, registry):
    llm_server.default = slow(5.0)
    async with gateway_for(
        llm_server, registry, timeout_s=0.2, transient_retries=0, fail_max=2
    ) as gateway:
        for _ in range(2):
            with pytest.raises(LLMUnavailable):
                await gateway.complete_json(MESSAGES, SCHEMA)
        assert gateway.breaker_state == "open"
        with pytest.raises(LLMUnavailable) as caught:
            await gateway.complete_json(MESSAGES, SCHEMA)
    assert caught.value.kind == "circuit_open"
    assert llm_server.chat_calls == 2


def breaker_calls(registry: CollectorRegistry, dependency: str, outcome: str) -> float:
    value = registry.get_sample_value(
        "firebreak_circuit_breaker_calls_total", {"dependency": dependency, "outcome": outcome}
    )
    return value or 0.0


async def test_a_model_slow_by_nature_never_opens_its_breaker(llm_server, registry):
    # A model on a CPU: every answer later than slow_call_s, every one at the same pace.
    llm_server.default = answer({"root_cause": "slow but steady"}, delay_s=0.6)
    dependency = f"llm:{llm_server.flavour}"
    config = BreakerConfig(slow_call_s=0.5)
    async with gateway_for(llm_server, registry, fail_max=2, breaker_config=config) as gateway:
        for _ in range(5):
            answered = await gateway.complete_json(MESSAGES, SCHEMA)
            assert answered.text == '{"root_cause": "slow but steady"}'
        assert gateway.breaker_state == "closed"
    assert breaker_calls(registry, dependency, "slow") == 0
    assert breaker_calls(registry, dependency, "success") == 5


async def test_answers_slow_for_the_model_are_used_and_open_the_breaker(llm_server, registry):
    # Three answers at the model's usual pace, then two five times slower: used, and
    # counted as failures.
    llm_server.script(
        *[answer({"root_cause": "usual"}, delay_s=0.1)] * 3,
        answer({"root_cause": "slow one"}, delay_s=0.7),
        answer({"root_cause": "slow two"}, delay_s=0.7),
    )
    dependency = f"llm:{llm_server.flavour}"
    config = BreakerConfig(slow_call_s=0.5)
    async with gateway_for(llm_server, registry, fail_max=2, breaker_config=config) as gateway:
        for _ in range(3):
            await gateway.complete_json(MESSAGES, SCHEMA)
        assert (await gateway.complete_json(MESSAGES, SCHEMA)).text == '{"root_cause": "slow one"}'
        assert gateway.breaker_state == "closed"
        assert (await gateway.complete_json(MESSAGES, SCHEMA)).text == '{"root_cause": "slow two"}'
        assert gateway.breaker_state == "open"
        with pytest.raises(LLMUnavailable) as caught:
            await gateway.complete_json(MESSAGES, SCHEMA)
    assert caught.value.kind == "circuit_open"
    assert llm_server.chat_calls == 5
    assert breaker_calls(registry, dependency, "slow") == 2
    assert calls(registry, llm_server.flavour, "ok") == 5


async def test_a_breaker_from_the_board_is_used(llm_server, registry):
    board = BreakerBoard(registry=registry)
    breaker = board.add(f"llm:{llm_server.flavour}", BreakerConfig(fail_max=1))
    llm_server.script(http_error(503))
    async with gateway_for(llm_server, registry, breaker=breaker, transient_retries=0) as gateway:
        with pytest.raises(LLMUnavailable):
            await gateway.complete_json(MESSAGES, SCHEMA)
        assert gateway.breaker is breaker and breaker.state == "open"
        await board.act(breaker.name, "reset")
        llm_server.script(answer({"root_cause": "back"}))
        assert (await gateway.complete_json(MESSAGES, SCHEMA)).text == '{"root_cause": "back"}'


async def test_offline_provider_raises_llm_unavailable(registry):
    gateway = LLMGateway(provider="offline", model="", base_url="", registry=registry)
    assert not gateway.enabled
    with pytest.raises(LLMUnavailable, match="no LLM configured") as caught:
        await gateway.complete_json(MESSAGES, SCHEMA)
    assert caught.value.kind == "offline"
    with pytest.raises(LLMUnavailable):
        await gateway.complete_text(MESSAGES)


async def test_from_config(registry):
    with ScriptedLLMServer("openai") as server:
        server.script(answer({"root_cause": "x"}))
        cfg = LLMConfig(
            provider="openai",
            model="gpt-test",
            base_url=server.base_url,
            timeout_s=3,
            transient_retries=1,
            temperature=0.2,
            circuit_breaker=BreakerConfig(fail_max=7, reset_timeout_s=9, slow_call_s=2),
        )
        gateway = LLMGateway.from_config(cfg, SecretStr(API_KEY), registry=registry)
        async with gateway:
            await gateway.complete_json(MESSAGES, SCHEMA)
        assert gateway.breaker.config.fail_max == 7
        assert gateway.breaker.config.reset_timeout_s == 9
        assert gateway.breaker.config.slow_call_s == 2
        assert gateway.transient_retries == 1
        assert gateway.dependency == "llm:openai"
        body = server.body()
        assert body["model"] == "gpt-test"
        assert body["temperature"] == 0.2
        assert server.chat_requests[-1].headers["Authorization"] == f"Bearer {API_KEY}"
        assert API_KEY not in server.all_bodies()


async def test_gateways_share_one_registry(registry):
    first = LLMGateway(provider="ollama", model="m", base_url="http://x", registry=registry)
    second = LLMGateway(provider="openai", model="m", base_url="http://y/v1", registry=registry)
    assert state(registry, "llm:ollama") == 0
    assert state(registry, "llm:openai") == 0
    await first.aclose()
    await second.aclose()


async def test_check_reaches_the_model_list(llm_server, registry):
    async with gateway_for(llm_server, registry) as gateway:
        line = await gateway.check()
    assert "reachable" in line
    assert "not listed" not in line
    assert llm_server.chat_calls == 0


async def test_truncated_openai_answer_is_returned_for_repair(registry):
    with ScriptedLLMServer("openai") as server:
        server.script(answer('{"root_cause": "the disk is fu', finish_reason="length"))
        async with gateway_for(server, registry) as gateway:
            assert (
                await gateway.complete_json(MESSAGES, SCHEMA)
            ).text == '{"root_cause": "the disk is fu'


# --------------------------------------------------------------------------------------------
# Tool calling

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search_logs",
            "description": "Search the logs.",
            "parameters": {
                "type": "object",
                "properties": {"source": {"type": "string"}, "query": {"type": "string"}},
                "required": ["source", "query"],
                "additionalProperties": False,
            },
        },
    }
]


async def test_tool_calls_round_trip_in_each_providers_format(llm_server, registry):
    llm_server.script(
        tool_call("search_logs", {"source": "app", "query": "refused"}),
        answer({"root_cause": "disk full"}),
    )
    async with gateway_for(llm_server, registry) as gateway:
        turn = await gateway.complete_with_tools(MESSAGES, TOOLS)
        (call,) = turn.calls
        conversation = [
            *MESSAGES,
            {"role": "assistant", "content": turn.text, "tool_calls": [vars(call)]},
            {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": "3 lines"},
        ]
        final = await gateway.complete_with_tools(conversation, TOOLS)

    assert call.name == "search_logs" and call.id
    assert turn.finish_reason == "tool_calls"
    arguments = {"source": "app", "query": "refused"}
    if llm_server.flavour == "openai":  # as the model sent them: a JSON string
        assert json.loads(call.arguments) == arguments
        assert "response_format" not in llm_server.body(0)  # it would forbid the call
        sent = llm_server.messages(1)
        assert sent[2]["tool_calls"][0]["id"] == call.id
        assert sent[3] == {"role": "tool", "tool_call_id": call.id, "content": "3 lines"}
    else:  # a dict; no format beside tools
        assert call.arguments == arguments
        assert llm_server.format(0) is None
        sent = llm_server.messages(1)
        assert sent[2]["tool_calls"][0]["function"]["arguments"] == arguments
        assert sent[3] == {"role": "tool", "content": "3 lines", "tool_name": "search_logs"}
    assert llm_server.tool_names(0) == ["search_logs"]
    assert (final.text, final.calls) == ('{"root_cause": "disk full"}', ())
    assert calls(registry, llm_server.flavour, "ok") == 2


@pytest.mark.parametrize(
    "written",
    [
        '<tool_call>\n{"name": "search_logs", "arguments": {"source": "app", "query": "oom"}}'
        "\n</tool_call>",
        'I will search.\n```json\n{"name": "search_logs", "arguments": '
        '"{\\"source\\": \\"app\\", \\"query\\": \\"oom\\"}"}\n```',
        '{"type": "function", "function": {"name": "search_logs", '
        '"parameters": {"source": "app", "query": "oom"}}}',
    ],
    ids=["qwen-tags", "fenced-string-arguments", "bare-function"],
)
async def test_a_call_written_as_text_is_a_call(llm_server, registry, written):
    llm_server.script(answer(written))
    async with gateway_for(llm_server, registry) as gateway:
        turn = await gateway.complete_with_tools(MESSAGES, TOOLS)
    (call,) = turn.calls
    assert (call.name, call.arguments) == ("search_logs", {"source": "app", "query": "oom"})
    assert call.id.startswith("call_")
    assert turn.text == "" and turn.finish_reason == "tool_calls"


async def test_text_naming_no_offered_tool_stays_an_answer(llm_server, registry):
    rca = '{"name": "checkout", "arguments": {}, "root_cause": "pool exhausted"}'
    llm_server.script(answer('<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>'))
    llm_server.script(answer(rca))
    async with gateway_for(llm_server, registry) as gateway:
        unknown = await gateway.complete_with_tools(MESSAGES, TOOLS)
        answered = await gateway.complete_with_tools(MESSAGES, TOOLS)
    assert unknown.calls == () and "rm_rf" in unknown.text
    assert answered.calls == () and answered.text == rca


async def test_every_request_bounds_the_answer(llm_server, registry):
    llm_server.script(answer({"root_cause": "a"}), answer("b"), answer("c"))
    async with gateway_for(llm_server, registry, max_tokens=321) as gateway:
        await gateway.complete_json(MESSAGES, SCHEMA)
        await gateway.complete_text(MESSAGES)
        await gateway.complete_with_tools(MESSAGES, TOOLS)
    for index in range(3):
        body = llm_server.body(index)
        if llm_server.flavour == "openai":
            assert body["max_completion_tokens"] == 321
        else:
            assert body["options"]["num_predict"] == 321


async def test_the_answer_says_what_the_server_counted(llm_server, registry):
    llm_server.script(answer({"root_cause": "a"}, finish_reason="length"))
    async with gateway_for(llm_server, registry) as gateway:
        answered = await gateway.complete_json(MESSAGES, SCHEMA)
    assert answered.cut
    assert answered.prompt_tokens is not None and answered.prompt_tokens > 0
    assert answered.completion_tokens is not None and answered.completion_tokens > 0
    assert answered.elapsed_s > 0


async def test_a_model_without_tools_is_a_bad_request_not_a_breaker_failure(registry):
    for flavour in ("openai", "ollama"):
        with ScriptedLLMServer(flavour, tools=False) as server:
            async with gateway_for(server, registry, fail_max=1) as gateway:
                with pytest.raises(LLMCallError) as caught:
                    await gateway.complete_with_tools(MESSAGES, TOOLS)
                assert caught.value.kind == "bad_request"
                assert "does not support tools" in str(caught.value)
                assert gateway.breaker_state == "closed"
                assert server.chat_calls == 1  # not retried


async def test_tool_requests_go_through_the_breaker(llm_server, registry):
    llm_server.default = http_error(500)
    async with gateway_for(llm_server, registry, fail_max=1, transient_retries=0) as gateway:
        with pytest.raises(LLMUnavailable):
            await gateway.complete_with_tools(MESSAGES, TOOLS)
        with pytest.raises(LLMUnavailable) as caught:
            await gateway.complete_with_tools(MESSAGES, TOOLS)
    assert caught.value.kind == "circuit_open"
    assert llm_server.chat_calls == 1


async def test_a_tokenizer_that_goes_away_falls_back_to_the_estimate(registry):
    """llama.cpp's `/tokenize` answered, then the server went away: the count is estimated,
    never an error (the SDK's client raises httpx2's errors, not httpx's)."""
    from aiohttp import web

    async def tokenize(request: web.Request) -> web.Response:
        if server["gone"]:
            assert request.transport is not None
            request.transport.close()  # the connection drops with no answer
        return web.json_response({"tokens": [1, 2, 3]})

    server = {"gone": False}
    app = web.Application()
    app.router.add_post("/tokenize", tokenize)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with LLMGateway(
            provider="openai",
            model="m",
            base_url=f"http://127.0.0.1:{port}/v1",
            timeout_s=5,
            registry=registry,
        ) as gateway:
            assert await gateway.count_tokens("ready") == 3  # the server's own count
            server["gone"] = True
            text = "a prompt of some length " * 20
            assert await gateway.count_tokens(text) == estimate_tokens(text)
    finally:
        await runner.cleanup()

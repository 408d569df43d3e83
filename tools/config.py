"""The configuration sections the tools read: the LLM, the investigation and the allowlisted
remediation actions. Validated once, at start, as part of the whole config. Each source's own
section lives beside its client (`LokiSource` in tools/loki.py, ...); `SourcesConfig`, the
`sources:` section, is assembled from the registry in tools/sources.py."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from firebreak.tools.breaker import BreakerConfig
from firebreak.tools.safe_regex import PatternError, compile_untrusted


class Section(BaseModel):
    """A configuration section: unknown keys are refused (a typo is not silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


DEFAULT_BASE_URLS = {
    "ollama": "http://localhost:11434",
    "openai": "https://api.openai.com/v1",
    "offline": "http://localhost:11434",
}


class LLMConfig(Section):
    provider: Literal["ollama", "openai", "offline"] = "offline"
    model: str = "llama3.1:8b"
    base_url: str = ""  # default: the provider's own (Ollama on localhost, OpenAI's public API)
    timeout_s: float = Field(60, gt=0)
    max_json_retries: int = Field(2, ge=0, le=10)
    transient_retries: int = Field(2, ge=0, le=10)  # network errors / 5xx, with backoff
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(1024, ge=64, le=32_768)  # the bound on every answer
    context_tokens: int | None = Field(None, ge=1024)  # the prompt budget; else the server's
    circuit_breaker: BreakerConfig = BreakerConfig()

    @model_validator(mode="after")
    def _provider_url(self) -> LLMConfig:
        if not self.base_url:
            object.__setattr__(self, "base_url", DEFAULT_BASE_URLS[self.provider])
        return self


class VerifyConfig(Section):
    promql: str
    threshold: float
    op: Literal["<", "<=", ">", ">="] = "<"
    within_s: float = Field(300, gt=0)
    source: str | None = None  # name of a sources.metrics entry; default the first one


# A value may hold `-` but not start with it: standing alone in argv it would be an option.
DEFAULT_PARAMETER_PATTERN = r"^[A-Za-z0-9_.:/][A-Za-z0-9_.:/-]{0,127}$"


def _re2_pattern(pattern: str) -> str:
    """A pattern matched against text from outside (a model's proposal, a log line) runs on
    RE2; one it cannot run is refused at start, with its reason."""
    try:
        compile_untrusted(pattern)
    except PatternError as exc:
        raise ValueError(f"{pattern!r}: {exc}") from None
    return pattern


class RemediationParam(Section):
    name: str
    pattern: str = DEFAULT_PARAMETER_PATTERN  # RE2, whole match; a leading `-` is refused
    description: str = ""

    _pattern_runs_on_re2 = field_validator("pattern")(_re2_pattern)


class RemediationAction(Section):
    name: str
    description: str
    kind: Literal["http", "command"]
    method: str = "POST"
    url: str | None = None
    headers: dict[str, str] = {}
    body: str | None = None
    argv: list[str] = []
    parameters: list[RemediationParam] = []
    timeout_s: float = Field(60, gt=0)
    verify: VerifyConfig | None = None


class InvestigationConfig(Section):
    max_concurrent: int = Field(4, ge=1, le=256)
    lookback_s: int = Field(1800, ge=60)  # evidence window before the alert started
    lookahead_s: int = Field(300, ge=0)
    evidence_budget_chars: int = Field(12_000, ge=1000)
    redact_patterns: list[str] = []  # extra regular expressions to scrub (RE2 syntax)
    checkpoint_path: str | None = None  # SQLite checkpointer file; default beside the store
    max_tool_calls: int = Field(6, ge=0, le=50)  # follow-up tool calls per investigation
    tool_result_chars: int = Field(4000, ge=200, le=100_000)  # one tool result's cap

    @field_validator("redact_patterns")
    @classmethod
    def _patterns_run_on_re2(cls, patterns: list[str]) -> list[str]:
        return [_re2_pattern(pattern) for pattern in patterns]

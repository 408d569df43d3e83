"""Configuration: `config.yaml` validated once at start, overridable from the environment.

Lookup order for the file: `--config PATH`, else `$FIREBREAK_CONFIG`, else `./config.yaml`.
Any key can be overridden with `FIREBREAK__SECTION__KEY` (values are parsed as JSON when they
look like JSON, so lists and numbers work). Secrets never live in the file: they come only from
the environment variables named in `Secrets`, and the models forbid unknown keys so a token
pasted into YAML is refused instead of silently ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from firebreak.tools.breaker import SOURCE_BREAKER, BreakerConfig

CONFIG_ENV = "FIREBREAK_CONFIG"
ENV_PREFIX = "FIREBREAK__"
DEFAULT_CONFIG = Path("config.yaml")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Section):
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    public_url: AnyHttpUrl = AnyHttpUrl("http://localhost:8080")
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    shutdown_timeout_s: float = Field(20, gt=0)


class StoreConfig(Section):
    url: str = "sqlite+aiosqlite:///./firebreak.db"

    @field_validator("url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return url


class SlackConfig(Section):
    mode: Literal["http", "socket", "console"] = "console"
    api_base_url: str = "https://slack.com/api/"
    channel: str = "C0INCIDENTS"
    command: str = "/incident"
    alertmanager_url: str | None = None  # for "silence / open in Alertmanager" links on cards

    @field_validator("command")
    @classmethod
    def _slash(cls, command: str) -> str:
        if not command.startswith("/") or " " in command:
            raise ValueError("must look like /incident")
        return command

    @field_validator("api_base_url")
    @classmethod
    def _trailing_slash(cls, url: str) -> str:
        return url if url.endswith("/") else url + "/"


class LLMConfig(Section):
    provider: Literal["ollama", "openai", "offline"] = "offline"
    model: str = "llama3.1:8b"
    base_url: str = "http://localhost:11434"
    timeout_s: float = Field(60, gt=0)
    max_json_retries: int = Field(2, ge=0, le=10)
    transient_retries: int = Field(2, ge=0, le=10)  # network errors / 5xx, with backoff
    temperature: float = Field(0.0, ge=0, le=2)
    circuit_breaker: BreakerConfig = BreakerConfig()


class LokiSource(Section):
    type: Literal["loki"]
    name: str
    url: str
    query: str = '{service="{{ labels.service }}"}'
    limit: int = Field(200, ge=1, le=5000)
    timeout_s: float = Field(10, gt=0)
    circuit_breaker: BreakerConfig = SOURCE_BREAKER


class ElasticsearchSource(Section):
    type: Literal["elasticsearch"]
    name: str
    url: str
    index: str = "*"
    query: str = 'service:"{{ labels.service }}"'
    timestamp_field: str = "@timestamp"
    message_field: str = "message"
    limit: int = Field(200, ge=1, le=5000)
    timeout_s: float = Field(10, gt=0)
    circuit_breaker: BreakerConfig = SOURCE_BREAKER


class FileSource(Section):
    type: Literal["file"]
    name: str
    path: str
    limit: int = Field(200, ge=1, le=5000)


LogSource = Annotated[LokiSource | ElasticsearchSource | FileSource, Field(discriminator="type")]


class PrometheusSource(Section):
    type: Literal["prometheus"]
    name: str
    url: str
    queries: list[str] = []
    timeout_s: float = Field(10, gt=0)
    circuit_breaker: BreakerConfig = SOURCE_BREAKER


class SourcesConfig(Section):
    logs: list[LogSource] = []
    metrics: list[PrometheusSource] = []


class InvestigationConfig(Section):
    max_concurrent: int = Field(4, ge=1, le=256)
    lookback_s: int = Field(1800, ge=60)  # evidence window before the alert started
    lookahead_s: int = Field(300, ge=0)
    evidence_budget_chars: int = Field(12_000, ge=1000)
    redact_patterns: list[str] = []  # extra regular expressions to scrub
    checkpoint_path: str | None = None  # SQLite checkpointer file; default beside the store


class IngestConfig(Section):
    reopen_window_s: int = Field(300, ge=0)  # a firing alert this soon after resolve reopens


class EscalationLevel(Section):
    notify: list[str] = Field(min_length=1)
    timeout_s: float = Field(300, gt=0)

    @field_validator("notify")
    @classmethod
    def _slack_ids(cls, targets: list[str]) -> list[str]:
        for target in targets:
            if target[:1] not in {"U", "W", "S", "C", "G"}:
                raise ValueError(f"{target!r} is not a Slack user (U…), group (S…) or channel (C…)")
        return targets


class EscalationPolicy(Section):
    name: str
    match: dict[str, str] = {}
    levels: list[EscalationLevel] = Field(min_length=1)
    repeat: int = Field(0, ge=0, le=100)


class EscalationConfig(Section):
    policies: list[EscalationPolicy] = []
    reminder_interval_s: float = Field(3600, gt=0)
    # How often the elected scheduler re-reads the ladders, reminders and remediations other
    # replicas wrote (its own changes are scheduled at once).
    sweep_interval_s: float = Field(5, gt=0)


class VerifyConfig(Section):
    promql: str
    threshold: float
    op: Literal["<", "<=", ">", ">="] = "<"
    within_s: float = Field(300, gt=0)
    source: str | None = None  # name of a sources.metrics entry; default the first one


class RemediationParam(Section):
    name: str
    pattern: str = r"^[A-Za-z0-9_.:/-]{1,128}$"
    description: str = ""


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


class RemediationConfig(Section):
    actions: list[RemediationAction] = []
    approvers: list[str] = []  # Slack user/group ids; empty means anyone in the channel
    approve_later_s: float = Field(600, gt=0)  # the "Approve, run in N min" button's delay


class Config(BaseSettings):
    """The whole configuration. Built only through `load_config`."""

    model_config = SettingsConfigDict(
        env_prefix="FIREBREAK__",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    slack: SlackConfig = SlackConfig()
    llm: LLMConfig = LLMConfig()
    sources: SourcesConfig = SourcesConfig()
    investigation: InvestigationConfig = InvestigationConfig()
    ingest: IngestConfig = IngestConfig()
    escalation: EscalationConfig = EscalationConfig()
    remediation: RemediationConfig = RemediationConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = init_settings.init_kwargs.pop("_yaml_file", None)  # type: ignore[attr-defined]
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)


class Secrets(BaseModel):
    """Credentials, read only from the environment and never printed."""

    model_config = ConfigDict(frozen=True)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    openai_api_key: SecretStr | None = None
    webhook_token: SecretStr | None = None
    api_token: SecretStr | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Secrets:
        env = os.environ if environ is None else environ
        return cls(**{field: env[var] for field, var in SECRET_ENV.items() if env.get(var)})

    def missing_for_slack(self, mode: str) -> list[str]:
        """The environment variables `slack.mode` needs that are not set."""
        needed = SLACK_MODE_SECRETS.get(mode, ())
        return [
            var for field, var in SECRET_ENV.items() if var in needed and not getattr(self, field)
        ]

    def values(self) -> list[str]:
        """Every secret value that is set: the redactor scrubs these from logs and prompts."""
        return [s.get_secret_value() for s in self.__dict__.values() if s is not None]


SECRET_ENV = {
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_app_token": "SLACK_APP_TOKEN",
    "openai_api_key": "OPENAI_API_KEY",
    "webhook_token": "FIREBREAK_WEBHOOK_TOKEN",
    "api_token": "FIREBREAK_API_TOKEN",
}
SLACK_MODE_SECRETS = {
    "http": ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"),
    "socket": ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"),
}


class ConfigError(Exception):
    """A configuration problem, phrased as one line naming the key."""


def resolve_config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The file to read, or None when no file exists at the default location."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    if os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
        if not path.is_file():
            raise ConfigError(f"config file {path} (from ${CONFIG_ENV}) does not exist")
        return path
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Config:
    """Read, merge and validate the configuration; raise ConfigError with one readable line."""
    yaml_file = resolve_config_path(path)
    _refuse_unknown_sections(os.environ)
    try:
        return Config(_yaml_file=yaml_file, **overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, yaml_file)) from None
    except (ValueError, OSError, yaml.YAMLError) as exc:  # malformed YAML, unreadable file
        message = " ".join(str(exc).split())  # YAML errors span lines: one line, all of it
        raise ConfigError(f"config file {yaml_file}: {message}") from None


def _refuse_unknown_sections(environ: Mapping[str, str]) -> None:
    """`FIREBREAK__SLAK__MODE` would otherwise be ignored without a word."""
    sections = set(Config.model_fields)
    for name in environ:
        if name.startswith(ENV_PREFIX):
            section = name[len(ENV_PREFIX) :].split("__")[0].lower()
            if section not in sections:
                raise ConfigError(
                    f"${name}: no config section {section!r} "
                    f"(sections: {', '.join(sorted(sections))})"
                )


def _describe(exc: ValidationError, yaml_file: Path | None) -> str:
    problems = []
    for error in exc.errors():
        parts = [str(part) for part in error["loc"] if not _is_union_tag(part)]
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        problems.append(f"{'.'.join(parts)}: {message}{_origin(parts, yaml_file)}")
    return "config error: " + "; ".join(problems)


def _origin(parts: list[str], yaml_file: Path | None) -> str:
    """Where the bad value came from: the environment variable overriding it, or the file."""
    for depth in range(len(parts), 0, -1):
        variable = ENV_PREFIX + "__".join(parts[:depth]).upper()
        if variable in os.environ:
            return f" (from ${variable})"
    return f" (in {yaml_file})" if yaml_file else ""


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and part in {"loki", "file", "elasticsearch", "prometheus"}

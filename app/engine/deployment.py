"""Store a validated library: a new process version only where the files changed."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import Database
from app.errors import LibraryInvalid
from app.models import Group, MessageStart, ProcessModel, ProcessVersion

from . import schedules
from .library import Library, ProcessDefinition, load_library


@dataclass(frozen=True)
class Deployed:
    key: str
    version: int
    created: bool  # False: the files were unchanged, the latest version stays


def known_groups(session: Session) -> set[str]:
    return set(session.scalars(select(Group.name)))


def validate_paths(db: Database, paths: Iterable[str | Path], forms_dir: Path | None) -> Library:
    with db.transaction() as s:
        groups = known_groups(s)
    library = load_library(paths, forms_dir, groups)
    schedules.check_library(library)  # timer start events: their times must work out
    return library


def deploy_paths(db: Database, paths: Iterable[str | Path], forms_dir: Path | None,
                 actor: str) -> tuple[list[Deployed], Library]:
    """Validate everything, then deploy everything in one transaction, or nothing."""
    library = validate_paths(db, paths, forms_dir)
    if library.errors:
        raise LibraryInvalid(library.errors)
    with db.transaction() as s:
        results = [_deploy_one(s, d, actor) for d in library.definitions.values()]
        schedules.sync_library(s, library)
    return results, library


def _deploy_one(s: Session, d: ProcessDefinition, actor: str) -> Deployed:
    model = s.scalar(select(ProcessModel).where(ProcessModel.key == d.key))
    if model is None:
        model = ProcessModel(key=d.key, title=d.title, file=d.file, business_key_prefix=d.business_key_prefix)
        s.add(model)
        s.flush()
    latest = s.get(ProcessVersion, model.latest_version_id) if model.latest_version_id else None
    sha = d.sha256
    if latest is not None and latest.sha256 == sha:
        return Deployed(d.key, latest.number, False)
    existing = s.scalar(select(ProcessVersion).where(ProcessVersion.model_id == model.id,
                                                     ProcessVersion.sha256 == sha))
    model.title, model.file, model.business_key_prefix = d.title, d.file, d.business_key_prefix
    if existing is not None:
        # Rolling back to files deployed before: that version becomes the latest again.
        model.latest_version_id = existing.id
        return Deployed(d.key, existing.number, False)
    number = (s.scalar(select(func.max(ProcessVersion.number)).where(ProcessVersion.model_id == model.id)) or 0) + 1
    version = ProcessVersion(model_id=model.id, number=number, sha256=sha, dialect=d.dialect, files=d.files,
                             elements=d.elements, deployed_by=actor)
    s.add(version)
    s.flush()
    for name, element_id in d.message_starts:
        s.add(MessageStart(version_id=version.id, message_name=name, element_id=element_id))
    model.latest_version_id = version.id
    return Deployed(d.key, number, True)

"""Who may work on a task: the one place this is decided."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a User, or identity.Actor; a HumanTask row, or records.TaskRecord
    from app.models import HumanTask, User


def is_candidate(user: User, task: HumanTask) -> bool:
    """May ``user`` claim ``task`` (ignoring whether someone already has)?"""
    if user.is_admin:
        return True
    if user.username in (task.candidate_users or []):
        return True
    if not task.candidate_groups and not task.candidate_users:
        return True  # a task with no candidates is everyone's
    return bool(user.group_names & set(task.candidate_groups or []))


def may_complete(user: User, task: HumanTask) -> bool:
    if user.is_admin:
        return True
    if task.assignee:
        return task.assignee == user.username
    return is_candidate(user, task)

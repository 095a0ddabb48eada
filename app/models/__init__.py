"""Every table, importable from one place (Alembic and tests read Base.metadata)."""
from .base import Base, utcnow
from .identity import Group, User, membership
from .instance import Incident, InstanceEvent, InstanceStatus, ProcessInstance
from .process import BusinessKeyCounter, MessageStart, ProcessModel, ProcessVersion
from .work import BufferedMessage, HumanTask, MessageSubscription, TaskCandidate, TaskStatus, Timer

__all__ = [
    "Base", "utcnow", "Group", "User", "membership", "Incident", "InstanceEvent", "InstanceStatus",
    "ProcessInstance", "BusinessKeyCounter", "MessageStart", "ProcessModel", "ProcessVersion",
    "BufferedMessage", "HumanTask", "MessageSubscription", "TaskCandidate", "TaskStatus", "Timer",
]

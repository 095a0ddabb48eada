"""Every table, importable from one place (Alembic and tests read Base.metadata)."""
# Domain and engine tables whose modules export their own names:
from . import async_work, iou, notification, refund, schedule, survey  # noqa: F401
from .base import Base, utcnow
from .calendar import Calendar, CalendarDay, CalendarDayHours, CalendarHours
from .call import Call, CallEvent
from .customer import Customer, CustomerPhone
from .identity import Group, User, membership
from .instance import Incident, InstanceEvent, InstanceStatus, ProcessInstance
from .process import BusinessKeyCounter, MessageStart, ProcessModel, ProcessVersion
from .work import BufferedMessage, HumanTask, MessageSubscription, TaskCandidate, TaskStatus, Timer

__all__ = [
    "Base", "utcnow", "Calendar", "CalendarDay", "CalendarDayHours", "CalendarHours", "Call", "CallEvent",
    "Customer", "CustomerPhone",
    "Group", "User", "membership",
    "Incident", "InstanceEvent", "InstanceStatus",
    "ProcessInstance", "BusinessKeyCounter", "MessageStart", "ProcessModel", "ProcessVersion",
    "BufferedMessage", "HumanTask", "MessageSubscription", "TaskCandidate", "TaskStatus", "Timer",
]

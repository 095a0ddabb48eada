"""Named operations that BPMN service tasks call.

A diagram names an operation (``spiffworkflow:serviceTaskOperator name="customer.lookup"``)
and passes parameters; the engine checks at deploy time that the name is registered here,
so a typo is a validation error, not a crash in the middle of a call.

An operation that uses the database declares a keyword parameter ``_session``; ``call``
passes it the session of the transaction it runs in (see ``context.py``); one that acts on
the instance calling it declares ``_instance_id``. Parameters
starting with ``_`` are not diagram parameters.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .context import instance_for, session_for


@dataclass(frozen=True)
class Operation:
    name: str
    func: Callable[..., Any]
    description: str

    @property
    def parameters(self) -> list[str]:
        return [p for p in inspect.signature(self.func).parameters if not p.startswith("_")]

    @property
    def needs_session(self) -> bool:
        return "_session" in inspect.signature(self.func).parameters

    @property
    def needs_instance(self) -> bool:
        return "_instance_id" in inspect.signature(self.func).parameters


_OPERATIONS: dict[str, Operation] = {}


def operation(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func`` as service operation ``name``."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        if name in _OPERATIONS and _OPERATIONS[name].func is not func:
            raise ValueError(f"service operation {name!r} registered twice")
        summary = (func.__doc__ or "").strip().split("\n")[0]
        _OPERATIONS[name] = Operation(name, func, summary)
        return func

    return register


def get(name: str) -> Operation | None:
    _load_builtin_operations()
    return _OPERATIONS.get(name)


def names() -> list[str]:
    _load_builtin_operations()
    return sorted(_OPERATIONS)


def call(name: str, params: dict[str, Any]) -> Any:
    op = get(name)
    if op is None:
        raise LookupError(f"unknown service operation {name!r}")
    if op.needs_session and "_session" not in params:
        params = {**params, "_session": session_for(name)}
    if op.needs_instance and "_instance_id" not in params:
        params = {**params, "_instance_id": instance_for(name)}
    return op.func(**params)


def _load_builtin_operations() -> None:
    # Importing the modules registers their operations.
    from . import builtin, customers, escalation, ious, notify, refunds, surveys  # noqa: F401

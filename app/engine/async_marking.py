"""The one place that decides whether a service task runs asynchronously, and how it retries.

A diagram marks a service task with ``<spiffworkflow:property name="async" value="true"/>``
in its ``spiffworkflow:properties`` (Camunda Modeler files: ``camunda:asyncBefore="true"``).
Optional properties (either dialect's ``properties``): ``retries`` (default 3: the operation
runs at most retries + 1 times) and ``retryBackoff`` (ISO duration, default PT10S; doubles
after each failure). Read straight from the XML so both dialects behave the same.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from lxml import etree
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from .diagram import CAMUNDA, element_properties
from .scripting import HotlineServiceTask

DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = timedelta(seconds=10)
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0", ""}


@dataclass(frozen=True)
class AsyncMarking:
    retries: int = DEFAULT_RETRIES
    backoff: timedelta = DEFAULT_BACKOFF

    @property
    def max_attempts(self) -> int:
        return self.retries + 1


def _flag(value: str, what: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{what} must be true or false, got {value!r}")


def read_marking(node: etree._Element) -> AsyncMarking | None:
    """The task's asynchronous marking, or None when it runs in the engine step.

    Raises ValueError naming the property when a value is not usable.
    """
    props = element_properties(node)
    marked = False
    if "async" in props:
        marked = _flag(props["async"], "property 'async'")
    camunda = node.get(f"{{{CAMUNDA}}}asyncBefore")
    if camunda is not None:
        marked = marked or _flag(camunda, "camunda:asyncBefore")
    if not marked:
        return None
    retries = DEFAULT_RETRIES
    if props.get("retries", "").strip():
        try:
            retries = int(props["retries"])
        except ValueError:
            raise ValueError(f"property 'retries' must be a whole number, got {props['retries']!r}") from None
        if not 0 <= retries <= 100:
            raise ValueError(f"property 'retries' must be between 0 and 100, got {retries}")
    backoff = DEFAULT_BACKOFF
    if props.get("retryBackoff", "").strip():
        text = props["retryBackoff"].strip()
        try:
            parsed = TimerEventDefinition.parse_iso_duration(text)
            backoff = TimerEventDefinition.get_timedelta_from_start(parsed)
        except Exception:
            raise ValueError(f"property 'retryBackoff' must be an ISO duration such as PT30S, got {text!r}") from None
        if backoff <= timedelta(0):
            raise ValueError(f"property 'retryBackoff' must be longer than zero, got {text!r}")
    return AsyncMarking(retries, backoff)


class AsyncServiceTask(HotlineServiceTask):
    """A service task that waits for a worker: it evaluates its parameters in the engine step
    (a bad expression fails the step, as for any service task) and stays STARTED; the worker
    calls the operation and completes the task later (see async_tasks.py)."""

    async_marking: AsyncMarking

    def _execute(self, task):
        task.internal_data[PARAMS_KEY] = {name: spec["value"] for name, spec in self.evaluate_params(task).items()}
        return None  # SpiffWorkflow: None keeps the task STARTED


PARAMS_KEY = "hotline_service_params"

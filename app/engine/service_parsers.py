"""Parsing service tasks: the operation they call and whether they run asynchronously.

SpiffWorkflow dialect: ``spiffworkflow:serviceTaskOperator`` names the operation (as
SpiffWorkflow reads it). Camunda dialect: ``camunda:type="external" camunda:topic="op.name"``
names it, ``camunda:inputOutput/camunda:inputParameter`` pass parameters (``${expr}`` is a
Python expression, other text a literal string) and ``camunda:resultVariable`` names where
the result goes. Both read the asynchronous marking through ``async_marking.read_marking``.
"""
from __future__ import annotations

from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.camunda.parser.task_spec import CamundaTaskParser
from SpiffWorkflow.spiff.parser.task_spec import ServiceTaskParser

from .async_marking import AsyncServiceTask, read_marking
from .diagram import CAMUNDA, NS


class _MarksAsync:
    def _marking(self):
        """The marking; an asynchronous task is made an ``AsyncServiceTask``."""
        try:
            marking = read_marking(self.node)
        except ValueError as exc:
            raise ValidationException(str(exc), node=self.node, file_name=self.filename) from None
        if marking is not None:
            self.spec_class = AsyncServiceTask
        return marking

    @staticmethod
    def _marked(spec, marking):
        if marking is not None:
            spec.async_marking = marking
        return spec


class HotlineServiceTaskParser(_MarksAsync, ServiceTaskParser):
    def create_task(self):
        marking = self._marking()
        return self._marked(super().create_task(), marking)


def _camunda_parameter(text: str) -> str:
    text = text.strip()
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1].strip()
    return repr(text)


class CamundaServiceTaskParser(_MarksAsync, CamundaTaskParser):
    """A Camunda service task naming an operation (external task topic) calls it; one that
    names none keeps SpiffWorkflow's plain service task."""

    def create_task(self):
        topic = (self.node.get(f"{{{CAMUNDA}}}topic") or "").strip()
        marking = self._marking()
        if not topic:
            if marking is not None:
                self.raise_validation_exception("an asynchronous service task must name its operation "
                                                "(camunda:type=\"external\" camunda:topic=\"operation.name\")")
            from SpiffWorkflow.bpmn.specs.defaults import ServiceTask

            return ServiceTask(self.spec, self.bpmn_id, **self.bpmn_attributes)
        params = {}
        for node in self.node.iterfind("./bpmn:extensionElements/camunda:inputOutput/camunda:inputParameter", NS):
            if node.get("name"):
                params[node.get("name")] = {"value": _camunda_parameter(node.text or ""), "type": "any"}
        spec = self.spec_class(self.spec, self.bpmn_id, operation_name=topic, operation_params=params,
                               result_variable=self.node.get(f"{{{CAMUNDA}}}resultVariable"),
                               **self.bpmn_attributes)
        return self._marked(spec, marking)

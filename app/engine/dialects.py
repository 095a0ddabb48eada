"""The two BPMN dialects Hotline reads: SpiffWorkflow's (default) and Camunda Modeler's.

A file is read as Camunda when it uses ``camunda:`` extensions and no ``spiffworkflow:``
ones. Each dialect has its own parser, message class and state serializer, because
SpiffWorkflow compares event definitions by exact class.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from SpiffWorkflow.bpmn.parser import BpmnValidator
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition as _BaseMessage
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition as CamundaMessage
from SpiffWorkflow.spiff.parser import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition as SpiffMessage
from SpiffWorkflow.task import Task

from .scripting import HotlineServiceTask
from .service_parsers import CamundaServiceTaskParser, HotlineServiceTaskParser
from .state import FastTaskConverter, StatelessSpecConverter, TolerantRegistry

SPIFF = "spiff"
CAMUNDA = "camunda"

_CAMUNDA_USE = re.compile(r"<camunda:|\scamunda:\w+\s*=")
_SPIFF_USE = re.compile(r"<spiffworkflow:|\sspiffworkflow:\w+\s*=")


def detect(text: str) -> str:
    if _CAMUNDA_USE.search(text) and not _SPIFF_USE.search(text):
        return CAMUNDA
    return SPIFF


class HotlineSpiffParser(SpiffBpmnParser):
    OVERRIDE_PARSER_CLASSES = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (HotlineServiceTaskParser, HotlineServiceTask),
    }


class HotlineCamundaParser(CamundaParser):
    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (CamundaServiceTaskParser, HotlineServiceTask),
    }


def _serializer(config: dict) -> BpmnWorkflowSerializer:
    config = dict(config)
    config[BpmnWorkflow] = StatelessSpecConverter
    config[Task] = FastTaskConverter
    registry = BpmnWorkflowSerializer.configure(config, registry=TolerantRegistry())
    registry.register(Decimal, lambda v: {"value": str(v)}, lambda v: Decimal(v["value"]))
    registry.register(date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"]))
    return BpmnWorkflowSerializer(registry)


@dataclass(frozen=True)
class Dialect:
    name: str
    make_parser: Callable[[bool], object]
    message_class: type[_BaseMessage]
    serializer: BpmnWorkflowSerializer
    wraps_payload: bool  # CamundaParser's message stores event.payload["payload"]


def _spiff_parser(validate: bool):
    return HotlineSpiffParser(validator=VALIDATOR if validate else None)


def _camunda_parser(validate: bool):
    return HotlineCamundaParser(validator=BpmnValidator() if validate else None)


DIALECTS: dict[str, Dialect] = {
    SPIFF: Dialect(SPIFF, _spiff_parser, SpiffMessage, _serializer(SPIFF_CONFIG), False),
    CAMUNDA: Dialect(CAMUNDA, _camunda_parser, CamundaMessage, _serializer(CAMUNDA_CONFIG), True),
}

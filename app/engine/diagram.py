"""Facts read straight from BPMN XML, the same way for both dialects.

SpiffWorkflow's parsers keep what they need to run a process; Hotline also needs what
people see and how work is assigned: element names, lanes, candidate groups, assignee,
due date, priority and form key, from ``spiffworkflow:properties`` or Camunda attributes.
It also lists every expression in a file so that validation can compile each one.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NS = {"bpmn": BPMN, "camunda": CAMUNDA, "spiffworkflow": SPIFF}

ASSIGNMENT_PROPERTIES = ("candidateGroups", "candidateUsers", "assignee", "dueDate", "priority", "formKey")
HUMAN_TYPES = {"userTask", "manualTask", "task"}


def _local(tag) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _split(value: str | None) -> list[str]:
    """``"a, b"`` -> ["a", "b"]; an expression (``=department``) stays whole, evaluated per task."""
    if value and value.strip().startswith("="):
        return [value.strip()]
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def process_elements(process: etree._Element) -> Iterator[etree._Element]:
    """Flow nodes of a process, including those inside embedded subprocesses."""
    for node in process.iter():
        if not isinstance(node.tag, str) or node.get("id") is None:
            continue
        if etree.QName(node).namespace != BPMN:
            continue
        yield node


def lanes_of(process: etree._Element) -> dict[str, str]:
    lanes: dict[str, str] = {}
    for ref in process.iterfind(".//bpmn:lane/bpmn:flowNodeRef", NS):
        if ref.text:
            lanes[ref.text.strip()] = ref.getparent().get("name") or ref.getparent().get("id")
    return lanes


def element_properties(node: etree._Element) -> dict[str, str]:
    """Assignment and display properties set on one element, in either dialect."""
    props: dict[str, str] = {}
    for prop in node.iterfind("./bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property", NS):
        if prop.get("name"):
            props[prop.get("name")] = prop.get("value", "")
    for prop in node.iterfind("./bpmn:extensionElements/camunda:properties/camunda:property", NS):
        if prop.get("name"):
            props[prop.get("name")] = prop.get("value", "")
    for name in ASSIGNMENT_PROPERTIES:
        value = node.get(f"{{{CAMUNDA}}}{name}")
        if value is not None:
            props[name] = value
    return props


def describe_elements(process: etree._Element) -> dict[str, dict]:
    """{element id: {name, type, lane, candidate_groups, assignee, ...}} for one process."""
    lanes = lanes_of(process)
    out: dict[str, dict] = {}
    for node in process_elements(process):
        kind = _local(node.tag)
        if kind in ("lane", "laneSet", "flowNodeRef", "sequenceFlow", "incoming", "outgoing"):
            continue
        props = element_properties(node)
        doc = node.find("./bpmn:documentation", NS)
        info = {
            "name": (node.get("name") or "").strip(),
            "type": kind,
            "lane": lanes.get(node.get("id")),
            "documentation": (doc.text or "").strip() if doc is not None and doc.text else "",
        }
        if kind in HUMAN_TYPES or kind == "startEvent":
            fields = inline_form_fields(node)
            if fields:
                info["form_fields"] = fields
        if kind in HUMAN_TYPES:
            groups = _split(props.get("candidateGroups"))
            if not groups and info["lane"]:
                groups = [info["lane"]]
            info.update(
                candidate_groups=groups,
                candidate_users=_split(props.get("candidateUsers")),
                assignee=props.get("assignee") or None,
                due=props.get("dueDate") or None,
                priority=props.get("priority") or None,
                form_key=props.get("formKey") or None,
            )
        out[node.get("id")] = info
    return out


def inline_form_fields(node: etree._Element) -> list[dict]:
    """Fields of a form defined in the diagram itself (Camunda Modeler's generated forms)."""
    fields = []
    for field in node.iterfind("./bpmn:extensionElements/camunda:formData/camunda:formField", NS):
        entry = {"id": field.get("id"), "label": field.get("label") or field.get("id"),
                 "type": field.get("type") or "string"}
        if field.get("defaultValue") is not None:
            entry["default"] = field.get("defaultValue")
        values = [{"id": v.get("id"), "name": v.get("name") or v.get("id")}
                  for v in field.iterfind("./camunda:value", NS)]
        if values:
            entry["choices"] = values
        constraints = {c.get("name"): c.get("config") for c in
                       field.iterfind("./camunda:validation/camunda:constraint", NS)}
        if "required" in constraints:
            entry["required"] = True
        fields.append(entry)
    return fields


@dataclass(frozen=True)
class Expression:
    element_id: str
    what: str  # "script", "condition", "timer", ...
    text: str
    mode: str  # "exec" or "eval"


_EVAL_PATHS = {
    "condition": ".//bpmn:conditionExpression",
    "timer": ".//bpmn:timeDuration|.//bpmn:timeDate|.//bpmn:timeCycle",
    "loop cardinality": ".//bpmn:loopCardinality",
    "completion condition": ".//bpmn:completionCondition",
    "loop condition": ".//bpmn:loopCondition",
}


def expressions(process: etree._Element) -> Iterator[Expression]:
    """Every Python script and expression in a process, with the element it belongs to."""
    for node in process_elements(process):
        kind = _local(node.tag)
        node_id = node.get("id")
        if kind == "scriptTask":
            script = node.find("./bpmn:script", NS)
            if script is not None and script.text:
                yield Expression(node_id, "script", script.text, "exec")
        for ext in ("preScript", "postScript"):
            el = node.find(f"./bpmn:extensionElements/spiffworkflow:{ext}", NS)
            if el is not None and el.text:
                yield Expression(node_id, ext, el.text, "exec")
        if kind == "sequenceFlow":
            cond = node.find("./bpmn:conditionExpression", NS)
            if cond is not None and cond.text and cond.text.strip():
                yield Expression(node_id, "condition", cond.text.strip(), "eval")
        if kind in ("timerEventDefinition", "multiInstanceLoopCharacteristics", "standardLoopCharacteristics"):
            owner = node.getparent()
            for what, path in _EVAL_PATHS.items():
                if what == "condition":
                    continue
                for el in node.xpath(path.replace(".//", "./"), namespaces=NS):
                    if el.text and el.text.strip():
                        yield Expression(owner.get("id", node_id), what, el.text.strip(), "eval")


def process_property(process: etree._Element, name: str) -> str | None:
    return element_properties(process).get(name)

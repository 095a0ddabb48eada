"""Turn BPMN/DMN texts into SpiffWorkflow specs (used by deploy and by the spec cache)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

from app.schemas.forms import from_inline_fields, load_text

from . import spiff_walks, state
from .calendars import Calendars
from .catch_up import catch_up
from .dialects import DIALECTS, Dialect
from .scripting import HotlineScriptEngine
from .timing import message_definitions, timer_definition


def parse_xml(text: str, filename: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=False)
    return etree.fromstring(text.encode("utf-8"), parser=parser, base_url=filename)


def build_parser(dialect: Dialect, files: dict[str, str], validate: bool):
    """A parser loaded with every file; DMN files go to every dialect's parser."""
    parser = dialect.make_parser(validate)
    for name, text in sorted(files.items()):
        if not name.endswith((".bpmn", ".dmn")):
            continue  # form files travel with the version; they are not parsed here
        root = parse_xml(text, name)
        if name.endswith(".dmn"):
            parser.add_dmn_xml(root, filename=name)
        else:
            parser.add_bpmn_xml(root, filename=name)
    return parser


def specs_for(parser, key: str):
    """(spec, subprocess specs) for a process id, or for a collaboration id (every pool runs)."""
    if key in parser.get_process_ids():
        return parser.get_spec(key), parser.get_subprocess_specs(key)
    if key in parser.collaborations:
        return parser.get_collaboration(key)
    raise KeyError(key)


@dataclass
class CompiledVersion:
    """A deployed version, parsed once and shared by every instance of it."""

    version_id: int
    key: str
    dialect: Dialect
    spec: Any
    subprocess_specs: dict
    elements: dict[str, dict]
    forms: dict[str, dict] = field(default_factory=dict)  # {form key: definition}
    script_engine: HotlineScriptEngine = field(default_factory=HotlineScriptEngine)
    has_timers: bool = True  # False: no instance of it can wait for time (its timer sync is skipped)
    has_messages: bool = True  # False: none can wait for a message

    def new_workflow(self) -> BpmnWorkflow:
        return spiff_walks.install(BpmnWorkflow(self.spec, self.subprocess_specs, script_engine=self.script_engine))

    def load(self, state_text: str, kept: BpmnWorkflow | None = None) -> BpmnWorkflow:
        """An instance's workflow, restored from its stored state with this version's spec;
        from ``kept`` (an older version of it, released here) where it can be."""
        serializer = self.dialect.serializer
        workflow = None
        if kept is not None:
            workflow = catch_up(serializer, state_text, kept, self.spec, self.subprocess_specs, self.script_engine)
        if workflow is None:
            workflow = state.load(serializer, state_text, self.spec, self.subprocess_specs, self.script_engine)
        return spiff_walks.install(workflow)

    def element(self, element_id: str) -> dict:
        return self.elements.get(element_id, {})

    def form_for(self, element_id: str) -> dict | None:
        """The form a task's data is checked against: its form file, else fields in the diagram."""
        info = self.element(element_id)
        key = info.get("form_key")
        if key and key in self.forms:
            return self.forms[key]
        if info.get("form_fields"):
            return from_inline_fields(info["form_fields"])
        return None


def compile_version(version_id: int, key: str, dialect_name: str, files: dict[str, str],
                    elements: dict[str, dict], calendars: Calendars | None = None) -> CompiledVersion:
    dialect = DIALECTS[dialect_name]
    parser = build_parser(dialect, files, validate=False)
    spec, subprocess_specs = specs_for(parser, key)
    forms = {name[len("forms/"):-len(".json")]: load_text(text, name)
             for name, text in files.items() if name.startswith("forms/") and name.endswith(".json")}
    lookups = {name[len("lookups/"):-len(".json")]: json.loads(text)
               for name, text in files.items() if name.startswith("lookups/") and name.endswith(".json")}
    definitions = [getattr(ts, "event_definition", None)
                   for s in [spec, *subprocess_specs.values()] if s is not None for ts in s.task_specs.values()]
    return CompiledVersion(version_id, key, dialect, spec, subprocess_specs, elements, forms,
                           HotlineScriptEngine(lookups, calendars),
                           has_timers=any(timer_definition(d) for d in definitions if d is not None),
                           has_messages=any(message_definitions(d) for d in definitions if d is not None))

"""The process library: read BPMN/DMN files, validate them, and describe what to deploy.

Validation names the file, the element id and the problem for everything it finds (not
just the first problem), so a designer can fix a file in one pass. Nothing here touches
the database; ``deploy`` in ``deployment.py`` stores what this module accepted.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.exceptions import SpiffWorkflowException

from app.schemas import forms
from app.services import registry as services

from . import diagram
from .compile import parse_xml, specs_for
from .dialects import DIALECTS, detect
from .scripting import HotlineServiceTask

# Form keys with a scheme belong to Camunda's own form system: run with a generic form.
_EXTERNAL_FORM = re.compile(r"^[a-z][a-z0-9+-]*:", re.I)


@dataclass(frozen=True)
class Problem:
    file: str
    element_id: str | None
    message: str
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        where = f"{self.file}" + (f" [{self.element_id}]" if self.element_id else "")
        return f"{where}: {self.message}"

    def to_dict(self) -> dict:
        return {"file": self.file, "element_id": self.element_id, "message": self.message,
                "severity": self.severity}


@dataclass
class ProcessDefinition:
    key: str
    title: str
    file: str
    dialect: str
    files: dict[str, str]
    elements: dict[str, dict]
    message_starts: list[tuple[str, str]]  # (message name, start event id)
    business_key_prefix: str

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        h.update(f"{self.dialect}\0{self.key}\0".encode())
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + self.files[name].encode() + b"\0")
        return h.hexdigest()


@dataclass
class Library:
    definitions: dict[str, ProcessDefinition] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def collect_files(paths: Iterable[str | Path]) -> tuple[dict[str, str], list[Problem]]:
    """{name: text} for every *.bpmn and *.dmn under ``paths`` (names relative to each path)."""
    files: dict[str, str] = {}
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and (
                p.suffix in (".bpmn", ".dmn") or (p.suffix == ".json" and p.parent.name == "lookups")))
            entries = [(p, p.relative_to(path).as_posix()) for p in found]
        elif path.is_file():
            entries = [(path, path.name)]
        else:
            problems.append(Problem(str(path), None, "no such file or directory"))
            continue
        for file, name in entries:
            if file.suffix == ".json":
                name = f"lookups/{file.name}"
            elif file.suffix not in (".bpmn", ".dmn"):
                problems.append(Problem(name, None, "not a .bpmn or .dmn file"))
                continue
            if name in files:
                problems.append(Problem(name, None, "two files with this name were given"))
                continue
            try:
                files[name] = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(Problem(name, None, f"cannot read file: {exc}"))
    return files, problems


def _spiff_problem(name: str, exc: Exception) -> Problem:
    element = getattr(exc, "id", None) or getattr(exc, "task_id", None) or None
    file = getattr(exc, "file_name", None) or name
    message = str(exc).strip() or type(exc).__name__
    line = getattr(exc, "line_number", None)
    if line:
        message += f" (line {line})"
    return Problem(file, element, message)


def business_key_prefix(key: str) -> str:
    words = [w for w in re.split(r"[_\-.\s]+|(?<=[a-z])(?=[A-Z])", key) if w and w[0].isalpha()]
    if not words:
        return "T"
    if len(words) == 1:
        return words[0][:3].upper()
    return "".join(w[0] for w in words[:4]).upper()


def load_library(paths: Iterable[str | Path], forms_dir: Path | None,
                 known_groups: set[str] | None = None) -> Library:
    files, problems = collect_files(paths)
    return check_files(files, forms_dir, known_groups, problems)


def check_files(files: dict[str, str], forms_dir: Path | None, known_groups: set[str] | None = None,
                problems: list[Problem] | None = None) -> Library:
    lib = Library(problems=list(problems or []))
    lookups = _lookup_tables(lib, {n: t for n, t in files.items() if n.startswith("lookups/")})
    files = {n: t for n, t in files.items() if not n.startswith("lookups/")}
    roots: dict[str, etree._Element] = {}
    for name, text in files.items():
        try:
            roots[name] = parse_xml(text, name)
        except etree.XMLSyntaxError as exc:
            lib.problems.append(Problem(name, None, f"not well-formed XML: {exc}"))
    if not files:
        lib.problems.append(Problem("(library)", None, "no .bpmn or .dmn files found"))
        return lib

    dmn_names = [n for n in roots if n.endswith(".dmn")]
    by_dialect: dict[str, list[str]] = {}
    for name in roots:
        if name.endswith(".bpmn"):
            by_dialect.setdefault(detect(files[name]), []).append(name)

    dmn_reported = False
    for dialect_name, names in sorted(by_dialect.items()):
        dialect = DIALECTS[dialect_name]
        parser = dialect.make_parser(True)
        for name in dmn_names:
            try:
                parser.add_dmn_xml(roots[name], filename=name)
            except (SpiffWorkflowException, etree.LxmlError, ValueError, KeyError) as exc:
                if not dmn_reported:
                    lib.problems.append(_spiff_problem(name, exc))
        dmn_reported = True
        added = []
        for name in sorted(names):
            try:
                parser.add_bpmn_xml(roots[name], filename=name)
                added.append(name)
            except (SpiffWorkflowException, etree.LxmlError, ValueError, KeyError) as exc:
                lib.problems.append(_spiff_problem(name, exc))
        _describe_processes(lib, parser, dialect_name, files, lookups, forms_dir, known_groups)
    return lib


def _describe_processes(lib: Library, parser, dialect_name: str, files: dict[str, str],
                        lookups: dict[str, str], forms_dir: Path | None, known_groups: set[str] | None) -> None:
    executable = [pid for pid, pp in parser.process_parsers.items() if pp.process_executable]
    collaborations = {
        cid: [p for p in parts if p in executable]
        for cid, parts in parser.collaborations.items()
    }
    keys = executable + [cid for cid, parts in collaborations.items() if len(parts) >= 2]
    for key in keys:
        is_collab = key not in parser.process_parsers
        own_file = (parser.process_parsers[collaborations[key][0]].filename if is_collab
                    else parser.process_parsers[key].filename)
        before = len(lib.errors)
        try:
            spec, subprocess_specs = specs_for(parser, key)
        except (SpiffWorkflowException, ValidationException, KeyError, ValueError, AttributeError) as exc:
            found = _missing_callees(parser, str(exc)) or [_spiff_problem(own_file, exc)]
            lib.problems.extend(p for p in found if p not in lib.problems)
            continue
        process_ids = ([*collaborations[key]] if is_collab else [key]) + [
            s for s in subprocess_specs if s in parser.process_parsers
        ]
        process_ids = list(dict.fromkeys(process_ids))
        used_files = {own_file}
        used_tables: dict[str, str] = {}
        elements: dict[str, dict] = {}
        for pid in process_ids:
            pp = parser.process_parsers[pid]
            used_files.add(pp.filename)
            elements.update(diagram.describe_elements(pp.node))
            for element_id, table in _check_expressions(lib, pp.filename, pp.node):
                name = f"lookups/{table}.json"
                if name in lookups:
                    used_tables[name] = lookups[name]
                else:
                    lib.problems.append(Problem(pp.filename, element_id, f"lookup table '{table}' has no file "
                                                f"lookups/{table}.json in the library"))
            used_files.update(_dmn_files(parser, pp.node))
        for s in [spec, *subprocess_specs.values()]:
            if s is None:
                continue
            for ts in s.task_specs.values():
                if isinstance(ts, HotlineServiceTask) and services.get(ts.operation_name) is None:
                    lib.problems.append(Problem(own_file, ts.bpmn_id,
                                                f"unknown service operation '{ts.operation_name}'"))
        used_forms = _check_assignment(lib, own_file, elements, forms_dir, known_groups)
        if len(lib.errors) > before:
            continue
        node = parser.process_parsers[key].node if not is_collab else None
        title = (node.get("name") if node is not None else None) or key
        prefix = (diagram.process_property(node, "businessKeyPrefix") if node is not None else None)
        lib.definitions[key] = ProcessDefinition(
            key=key,
            title=title.strip(),
            file=own_file,
            dialect=dialect_name,
            files={**{name: files[name] for name in sorted(used_files)}, **used_forms, **used_tables},
            elements=elements,
            message_starts=[] if is_collab else _message_starts(parser, node),
            business_key_prefix=(prefix or business_key_prefix(key))[:20],
        )


def _missing_callees(parser, error: str) -> list[Problem]:
    """The call activities behind SpiffWorkflow's "process 'x' was not found", which names no element."""
    found = []
    for pp in parser.process_parsers.values():
        for call in pp.node.iterfind(".//bpmn:callActivity", diagram.NS):
            called = call.get("calledElement")
            if called and called not in parser.process_parsers and f"'{called}'" in error:
                found.append(Problem(pp.filename, call.get("id"), f"calls process '{called}', which no file defines"))
    return found


def _dmn_files(parser, process_node: etree._Element) -> set[str]:
    found = set()
    for task in process_node.iterfind(".//bpmn:businessRuleTask", diagram.NS):
        ref = task.get(f"{{{diagram.CAMUNDA}}}decisionRef")
        if ref is None:
            el = task.find("./bpmn:extensionElements/spiffworkflow:calledDecisionId", diagram.NS)
            ref = el.text.strip() if el is not None and el.text else None
        dmn = getattr(parser, "dmn_parsers", {}).get(ref)
        if dmn is not None and dmn.filename:
            found.add(dmn.filename)
    return found


_LOOKUP_CALL = re.compile(r"""\blookup\(\s*["']([^"']+)["']""")


def _check_expressions(lib: Library, file: str, process_node: etree._Element) -> list[tuple[str, str]]:
    """Compile every expression; returns (element id, lookup table) for each lookup() it calls."""
    tables = []
    for expr in diagram.expressions(process_node):
        try:
            compile(expr.text, f"<{expr.element_id}>", expr.mode)
        except SyntaxError as exc:
            lib.problems.append(Problem(file, expr.element_id,
                                        f"{expr.what} does not compile: {exc.msg} (line {exc.lineno}): "
                                        f"{expr.text.strip()[:80]!r}"))
        tables.extend((expr.element_id, t) for t in _LOOKUP_CALL.findall(expr.text))
    return tables


def _lookup_tables(lib: Library, texts: dict[str, str]) -> dict[str, str]:
    """Lookup tables (lookups/<name>.json: one JSON object of key -> value) that are usable."""
    usable = {}
    for name, text in texts.items():
        try:
            table = json.loads(text)
        except json.JSONDecodeError as exc:
            lib.problems.append(Problem(name, None, f"not valid JSON: {exc.msg} (line {exc.lineno})"))
            continue
        if not isinstance(table, dict):
            lib.problems.append(Problem(name, None, "a lookup table must be one JSON object of key -> value"))
            continue
        usable[name] = text
    return usable


def _check_assignment(lib: Library, file: str, elements: dict[str, dict], forms_dir: Path | None,
                      known_groups: set[str] | None) -> dict[str, str]:
    """Check form keys, lanes and assignment expressions; returns {"forms/<key>.json": text} used."""
    unknown_lanes: set[str] = set()
    used_forms: dict[str, str] = {}
    for element_id, info in elements.items():
        form_key = info.get("form_key")
        if form_key:
            if _EXTERNAL_FORM.match(form_key):
                lib.problems.append(Problem(file, element_id, f"form key '{form_key}' is a Camunda form; "
                                            "Hotline shows a generic form for it", "warning"))
            elif forms_dir is not None and (forms_dir / f"{form_key}.json").is_file():
                name = f"forms/{form_key}.json"
                text = (forms_dir / f"{form_key}.json").read_text(encoding="utf-8")
                try:
                    forms.load_text(text, name)
                    used_forms[name] = text
                except forms.FormError as exc:
                    lib.problems.append(Problem(name, element_id, str(exc)))
            elif forms_dir is not None:
                if info.get("form_fields"):
                    lib.problems.append(Problem(file, element_id, f"form key '{form_key}' has no file "
                                                f"forms/{form_key}.json; the fields defined in the diagram are "
                                                "used", "warning"))
                else:
                    lib.problems.append(Problem(file, element_id,
                                                f"form key '{form_key}' has no file forms/{form_key}.json"))
        lane = info.get("lane")
        if known_groups is not None and lane and lane not in known_groups and lane not in unknown_lanes:
            unknown_lanes.add(lane)
            lib.problems.append(Problem(file, element_id, f"lane '{lane}' names no known group", "warning"))
        expressions = [(name, info.get(name)) for name in ("due", "priority", "assignee")]
        expressions += [(name, v) for name in ("candidate_groups", "candidate_users") for v in info.get(name) or []]
        for expr_name, value in expressions:
            if value and value.startswith("="):
                try:
                    compile(value[1:], f"<{element_id}>", "eval")
                except SyntaxError as exc:
                    lib.problems.append(Problem(file, element_id, f"{expr_name} expression does not "
                                                f"compile: {exc.msg}: {value!r}"))
    return used_forms


def _message_starts(parser, node: etree._Element | None) -> list[tuple[str, str]]:
    if node is None:
        return []
    starts = []
    for start in node.iterfind("./bpmn:startEvent", diagram.NS):
        for med in start.iterfind("./bpmn:messageEventDefinition", diagram.NS):
            ref = med.get("messageRef")
            name = parser.messages.get(ref, ref) if ref else None
            if name:
                starts.append((name, start.get("id")))
    return starts



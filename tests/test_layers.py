"""The import rules of design.md "Layout", checked on the source instead of remembered.

Every import counts, including those inside functions; relative imports are resolved
to the absolute module they name.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("app", "workers", "telephony")


@dataclass(frozen=True)
class Rule:
    layer: str  # module prefix the rule applies to
    forbidden: tuple[str, ...]  # module prefixes it must not import
    why: str


RULES = [
    Rule("app.engine", ("flask", "app.web", "app.api", "workers"),
         "engine never imports Flask, web, api or workers"),
    Rule("app.models", ("app.engine", "app.services", "app.web", "app.api", "app.schemas"),
         "models import nothing from the layers above them"),
    Rule("app.services", ("app.engine", "app.web", "app.api"),
         "services never import engine, web or api"),
    Rule("telephony", ("app.engine", "app.models"),
         "telephony talks to the rest only through RQ jobs and Redis"),
]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool, filename: str = "<source>"):
    """(line, absolute module name) for every import in ``source``.

    ``from X import y`` yields both X and X.y, since y may be a module.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join(p for p in [*base_parts, node.module or ""] if p)
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}"


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(files: list[Path], root: Path = ROOT) -> list[str]:
    """"file:line: imports X (rule)" for every import that breaks a rule."""
    found = []
    for path in files:
        module = module_name(path, root)
        applicable = [r for r in RULES if _within(module, r.layer)]
        if not applicable:
            continue
        seen = set()
        for line, name in imported_modules(path.read_text(encoding="utf-8"), module,
                                           path.name == "__init__.py", str(path)):
            for rule in applicable:
                bad = next((f for f in rule.forbidden if _within(name, f)), None)
                if bad and (line, bad) not in seen:
                    seen.add((line, bad))
                    found.append(f"{path.relative_to(root)}:{line}: imports {name} ({rule.why})")
    return found


def source_files() -> list[Path]:
    return sorted(p for top in CHECKED if (ROOT / top).is_dir() for p in (ROOT / top).rglob("*.py"))


def test_layers_follow_the_import_rules():
    files = source_files()
    assert any(module_name(p).startswith("app.engine.") for p in files), "found no app/engine sources"
    problems = violations(files)
    assert not problems, "imports against design.md \"Layout\":\n" + "\n".join(problems)


@pytest.mark.parametrize("layer_file, source, expected", [
    ("app/engine/x.py", "from flask import current_app", "2: imports flask"),
    ("app/engine/x.py", "def f():\n    from ..web import health", "3: imports app.web"),
    ("app/engine/sub/__init__.py", "from ... import api", "2: imports app.api"),
    ("app/engine/x.py", "import workers.sweeper", "2: imports workers.sweeper"),
    ("app/models/x.py", "from app import schemas", "2: imports app.schemas"),
    ("app/models/x.py", "from ..services.identity import find_user", "2: imports app.services.identity"),
    ("app/services/x.py", "from app.engine import clock", "2: imports app.engine"),
    ("telephony/x.py", "from app.models import Call", "2: imports app.models"),
])
def test_checker_catches(tmp_path, layer_file, source, expected):
    """The check itself works: each kind of forbidden import is reported with file and line."""
    path = tmp_path / layer_file
    path.parent.mkdir(parents=True)
    path.write_text("import os\n" + source + "\n")
    found = violations([path], tmp_path)
    assert len(found) == 1 and found[0].startswith(f"{layer_file}:{expected}"), found


@pytest.mark.parametrize("layer_file, source", [
    ("app/engine/x.py", "from . import clock\nfrom app.models import Timer\nfrom app.schemas import forms"),
    ("app/services/x.py", "from .registry import operation\nfrom app.models import User"),
    ("app/web/x.py", "from flask import Blueprint\nfrom app.engine import queries"),
    ("app/models/x.py", "from .base import Base\nfrom app.db import Database"),
])
def test_checker_allows(tmp_path, layer_file, source):
    path = tmp_path / layer_file
    path.parent.mkdir(parents=True)
    path.write_text(source + "\n")
    assert violations([path], tmp_path) == []


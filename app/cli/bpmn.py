"""flask --app wsgi bpmn validate|deploy|list|test"""
from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy.exc import DBAPIError

from app.engine import queries, scenarios
from app.engine.library import Library, Problem, load_library

from .common import HotlineGroup, emit, hotline, json_option, table

bpmn = HotlineGroup("bpmn", help="Validate, deploy, list and test BPMN processes.")


def _paths(paths: tuple[str, ...]) -> list[str]:
    return list(paths) or [str(hotline().settings.bpmn_dir)]


def _problem_lines(problems) -> None:
    for p in problems:
        click.echo(f"{p.severity}: {p}", err=p.severity == "error")


def _check(paths: list[str]) -> Library:
    h = hotline()
    try:
        return h.engine.validate(paths)
    except DBAPIError:
        # Checking files needs no database: a designer validates before one is set up (or reachable).
        library = load_library(paths, h.settings.forms_dir)
        library.problems.append(Problem("(library)", None, "lanes not checked against groups: no database "
                                        "to read them from", "warning"))
        return library


@bpmn.command("validate")
@click.argument("paths", nargs=-1, type=click.Path())
@json_option
def validate(paths):
    """Check BPMN/DMN files (default: bpmn/) without deploying anything."""
    library = _check(_paths(paths))
    result = {"valid": not library.errors, "processes": sorted(library.definitions),
              "problems": [p.to_dict() for p in library.problems]}

    def human(_):
        _problem_lines(library.problems)
        if not library.errors:
            click.echo(f"ok: {len(library.definitions)} process(es) valid: {', '.join(sorted(library.definitions))}")

    emit(result, human)
    if library.errors:
        # Every problem was printed above, one line each: exit without repeating the first one.
        raise SystemExit(1)


@bpmn.command("deploy")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--user", "actor", default="admin", show_default=True, help="Who deploys.")
@json_option
def deploy(paths, actor):
    """Validate, then deploy changed processes (default: bpmn/). All or nothing."""
    results, library = hotline().engine.deploy(_paths(paths), actor)
    out = {"deployed": [r.__dict__ for r in results], "warnings": [p.to_dict() for p in library.warnings]}

    def human(_):
        _problem_lines(library.warnings)
        for r in results:
            click.echo(f"{r.key}: version {r.version} ({'new' if r.created else 'unchanged'})")

    emit(out, human)


@bpmn.command("list")
@json_option
def list_processes():
    """Deployed processes and their latest versions."""
    with hotline().db.transaction() as s:
        rows = queries.processes(s)
    emit(rows, lambda r: table(r, [("key", "KEY"), ("version", "VERSION"), ("title", "TITLE"), ("file", "FILE"),
                                   ("deployed_at", "DEPLOYED")], "no processes deployed"))


@bpmn.command("test")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--library", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="BPMN folder to deploy (default: the nearest one at or above each scenario file).")
@click.option("--forms", "forms_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Form definitions folder (default: the configured one).")
@json_option
def test_scenarios(path, library, forms_dir):
    """Run the scenario tests (*.scenario.yaml) under PATH (default: bpmn/), each on a throwaway database."""
    settings = hotline().settings
    path = path or settings.bpmn_dir
    results = scenarios.run_paths(path, forms_dir or settings.forms_dir, library, settings.timezone)
    failed = sum(not r.passed for r in results)
    summary = f"{len(results) - failed} passed, {failed} failed"

    def human(_):
        if not results:
            click.echo(f"no scenario files (*.scenario.yaml) under {path}")
        for r in results:
            click.echo(r.line())
        click.echo(summary)

    emit({"passed": len(results) - failed, "failed": failed, "results": [r.to_dict() for r in results]}, human)
    if failed:
        raise SystemExit(1)

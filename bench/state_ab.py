"""Same-process A/B of ``state.load`` + its first ``state.dump``: another version of
``app/engine/state.py`` against this one, on one long loop ticket, alternating.

    git show REV:app/engine/state.py > /tmp/state_old.py
    .venv/bin/python -m bench.state_ab /tmp/state_old.py [--rounds 1000] [--pairs 41] [--phases]

``--phases`` times the parts of a load apart (parse, the tasks' lines, ``from_dict``, seeding
the kept JSON, the first dump); it needs both versions to have them (``5b102a8`` and later).

This VM's speed drifts by up to 2x within minutes (bench/RESULTS.md), more than the
differences a change to the state code makes; alternating the two versions in one process,
one load each in turn, cancels the drift that separate runs of ``bench.engine`` cannot. The
ticket is the benchmark's loop (``bench/data/loop.bpmn``) run ``--rounds`` times in raw
SpiffWorkflow; each version reads the state its own ``dump`` wrote (each its own layout).
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
from time import perf_counter

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.helpers.registry import DefaultRegistry
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser import SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from app.engine import state as current  # importing app.engine lifts SpiffWorkflow's depth limit
from app.tuning import tune_gc

from .drivers import HERE

_FRAGMENTS = "_hotline_fragments"  # what both versions keep on a workflow between dumps


def _module(path: str):
    spec = importlib.util.spec_from_file_location("hotline_state_other", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _serializer(module) -> BpmnWorkflowSerializer:
    config = dict(SPIFF_CONFIG)
    config[BpmnWorkflow] = module.StatelessSpecConverter
    config[Task] = module.FastTaskConverter
    registry = getattr(module, "TolerantRegistry", DefaultRegistry)()  # as app/engine/dialects.py builds it
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config, registry=registry))


def _ticket(rounds: int) -> BpmnWorkflow:
    parser = SpiffBpmnParser()
    parser.add_bpmn_file(str(HERE / "data" / "loop.bpmn"))
    workflow = BpmnWorkflow(parser.get_spec("bench_loop"), parser.get_subprocess_specs("bench_loop"))
    for task in workflow.get_tasks(state=TaskState.READY):
        task.set_data(limit=10**9, business_key="BENCH-2026-000001")
    workflow.do_engine_steps()
    for n in range(rounds):
        task = workflow.get_next_task(state=TaskState.READY, manual=True)
        task.set_data(count=n)
        task.run()
        workflow.do_engine_steps()
    return workflow


_PHASES = ("parse", "lines", "from_dict", "seed", "dump")


def _phases(module, serializer, text: str, spec, subprocess_specs) -> list[float]:
    """``module.load`` + ``module.dump`` cut into ``_PHASES``, as ``load`` does them; in ms."""
    t0 = perf_counter()
    dct = module._parse(text)
    t1 = perf_counter()
    texts = module._task_texts(text, dct)
    t2 = perf_counter()
    loaded = serializer.from_dict(dct, spec=spec, subprocess_specs=subprocess_specs)
    t3 = perf_counter()
    setattr(loaded, _FRAGMENTS, module._Fragments.seeded(serializer, loaded, texts))
    t4 = perf_counter()
    module.dump(serializer, loaded)
    t5 = perf_counter()
    return [(b - a) * 1000 for a, b in ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", help="a copy of another version of app/engine/state.py")
    parser.add_argument("--rounds", type=int, default=1000, help="loop rounds of the ticket (2 tasks each)")
    parser.add_argument("--pairs", type=int, default=41, help="loads timed per version")
    parser.add_argument("--phases", action="store_true", help="also time the parts of a load apart")
    args = parser.parse_args(argv)

    modules = {"other": _module(args.other), "this": current}
    workflow = _ticket(args.rounds)
    serializers, texts = {}, {}
    for name, module in modules.items():
        serializers[name] = _serializer(module)
        workflow.__dict__.pop(_FRAGMENTS, None)  # each version's first dump, in its own layout
        texts[name] = module.dump(serializers[name], workflow)
    spec, subprocess_specs = workflow.spec, workflow.subprocess_specs
    tune_gc()
    times: dict[str, list[float]] = {name: [] for name in modules}
    phases: dict[str, list[list[float]]] = {name: [] for name in modules}
    for n in range(args.pairs):
        for name in (("other", "this") if n % 2 else ("this", "other")):
            module, serializer = modules[name], serializers[name]
            t0 = perf_counter()
            loaded = module.load(serializer, texts[name], spec, subprocess_specs, None)
            module.dump(serializer, loaded)
            times[name].append(perf_counter() - t0)
            del loaded
            if args.phases:
                phases[name].append(_phases(module, serializer, texts[name], spec, subprocess_specs))
    print(f"{args.rounds} rounds, {len(workflow.tasks)} tasks, state {len(texts['this']) // 1024} KiB; "
          f"load + first dump, {args.pairs} each, alternating:")
    for name, values in times.items():
        print(f"  {name:5}  median {statistics.median(values) * 1000:7.2f} ms   min {min(values) * 1000:7.2f} ms")
    print(f"  this / other (medians): {statistics.median(times['this']) / statistics.median(times['other']):.2f}")
    if args.phases:
        print("  phases, medians in ms:       other     this   this / other")
        for n, phase in enumerate(_PHASES):
            other, this = (statistics.median(row[n] for row in phases[name]) for name in ("other", "this"))
            print(f"    {phase:22} {other:9.2f} {this:8.2f}   {this / other if other else float('nan'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

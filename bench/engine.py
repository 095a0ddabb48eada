"""Engine throughput and growth: Hotline on SQLite and PostgreSQL against raw SpiffWorkflow.

    .venv/bin/python -m bench.engine                 # the figures (about 2.5 minutes)
    .venv/bin/python -m bench.engine --profile       # where the time goes, on PostgreSQL
    .venv/bin/python -m bench.whatif                 # two experiments behind the next steps

Measured in one run, on the same BPMN (``bench/data/loop.bpmn``: user task -> exclusive
gateway -> back to the user task until ``count >= limit``, never reached here):

(a) starts/s: a new instance run to its first user task;
(b) completions/s: completing the user task of a fresh instance (the process loops back
    to a new user task, so the instance keeps waiting);
(c) the cost of one completion in an instance that has already completed N user tasks
    (N = 0, 10, 100, 1000 by default): one instance is driven to N, the next ``--timed``
    completions are timed, then it is driven on to the next N.

Hotline is measured twice for (b) and (c): "cached", the engine as configured by default
(a process keeps the workflows it ran last, ``app/engine/live.py``; the same process works
one ticket after another), and "cold", a second ProcessEngine with ``live_workflows=0`` on
the same database, so every call reads and parses the stored state, as when another
process handled the ticket last. For cold (c) the cached engine drives the instance and
the cold one times its completions. A start reads no state, so (a) is measured once.

The baseline is raw SpiffWorkflow in memory: the spec is parsed once, ``BpmnWorkflow(spec,
subspecs)``, ``do_engine_steps``, tasks completed with ``task.set_data`` + ``task.run``, no
persistence. Ratios (persistence overhead = Hotline time / raw time) use the baseline of
the same run. Timings are ``time.perf_counter`` around each operation, after a warm-up;
rates are the median over ``--rounds`` rounds, latencies the median over all operations.
``app.tuning.tune_gc()`` (what the web and worker entry points call at start-up) is applied
before anything is measured, raw included, unless ``--no-gc-tuning``.

Stall check: every loop round adds two levels to SpiffWorkflow's task tree, whose
iterators used to stop at depth 1,000 (~500 rounds). ``app.engine`` now lifts that limit
at import, for the whole process, so the raw baseline here runs with it lifted too. The
check asserts that raw SpiffWorkflow and Hotline (cached, on every backend) get past
``--stall-rounds`` (600) loop rounds with the next user task ready, status ``waiting`` and
no open incident; otherwise it prints FAILED and the run exits with status 1.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from time import perf_counter

from app.tuning import tune_gc

from .drivers import DEFAULT_PG_SERVER, HERE, Raw, hotline
from .measure import (
    growth,
    load_average,
    machine,
    measure,
    measure_completions,
    measure_starts,
    ms,
    stall_check,
    warm_up,
)

# Targets from the issue, checked against the PostgreSQL figures.
TARGET_STARTS = 300.0
TARGET_COMPLETIONS = 200.0
TARGET_OVERHEAD = 3.0
TARGET_GROWTH = 10.0


def ratio(x: float) -> str:
    return f"{x:.1f}x"


# --- the run --------------------------------------------------------------------

def run_raw(args, results: dict) -> None:
    t0 = perf_counter()
    d = Raw()
    warm_up(d, args.warmup)
    starts, instances = measure_starts(d, args.starts, args.rounds)
    instances += [d.start() for _ in range(args.completions - len(instances))]
    completions = measure_completions(d, instances[:args.completions], args.rounds)
    run = growth(d, d, args.checkpoints, args.timed)
    results["raw"] = {"starts": starts, "completions": completions, "growth": run.points,
                      "growth_seconds": run.seconds}
    if not args.no_stall_check:
        results["stall"]["raw"] = stall_check(d, args.stall_rounds, run)
    _progress("raw", results["raw"], t0)


def run_backend(backend: str, args, results: dict) -> None:
    t0 = perf_counter()
    with hotline(backend, args) as d:
        cold = d.cold()
        warm_up(d, args.warmup)
        warm_up(cold, args.warmup)
        starts, instances = measure_starts(d, args.starts, args.rounds)
        instances += [d.start() for _ in range(args.completions - len(instances))]
        hits0 = d.cache_stats()
        completions = measure_completions(d, instances[:args.completions], args.rounds)
        hits = [b - a for a, b in zip(hits0, d.cache_stats(), strict=True)]
        instance = d.start()
        floor, _ = measure(lambda _: d.floor_op(instance), list(range(args.completions)), args.rounds)
        run = growth(d, d, args.checkpoints, args.timed)
        results[backend] = {"starts": starts, "completions": completions, "growth": run.points,
                            "growth_seconds": run.seconds, "floor": floor, "cache (b)": hits}
        _progress(backend, results[backend], t0)
        t0 = perf_counter()
        cold_instances = [cold.start() for _ in range(args.completions)]
        cold_completions = measure_completions(cold, cold_instances, args.rounds)
        cold_run = growth(d, cold, args.checkpoints, args.timed)
        results[backend + " cold"] = {"completions": cold_completions, "growth": cold_run.points,
                                      "growth_seconds": cold_run.seconds}
        _progress(backend + " cold", results[backend + " cold"], t0)
        t0 = perf_counter()
        other = d.other()
        turns_run = growth(d, other, args.checkpoints, args.timed, between=d)
        results[backend + " turns"] = {"growth": turns_run.points, "growth_seconds": turns_run.seconds,
                                       "outdated": other.engine.live.outdated}
        _progress(backend + " turns", results[backend + " turns"], t0)
        if not args.no_stall_check:
            results["stall"][backend] = stall_check(d, args.stall_rounds, run)


def _progress(name: str, r: dict, t0: float) -> None:
    parts = [f"{r['starts'].rate:,.0f} starts/s"] if "starts" in r else []
    if "completions" in r:
        parts.append(f"{r['completions'].rate:,.0f} completions/s")
    parts += [f"@{p.n} {ms(p.latency)}" for p in r["growth"]]
    print(f"  {name}: {', '.join(parts)}  ({perf_counter() - t0:.1f} s)", flush=True)


# --- the report -----------------------------------------------------------------

def report(results: dict, args) -> tuple[str, bool]:
    """The figures, the targets and the stall check as text; and whether the stall check passed."""
    lines = []
    out = lines.append
    raw = results["raw"]
    cols = ["raw"] + [n for b in ("sqlite", "postgresql") for n in (b, b + " cold", b + " turns") if n in results]
    heads = {"raw": "raw", "sqlite": "SQLite cached", "sqlite cold": "SQLite cold", "sqlite turns": "SQLite turns",
             "postgresql": "PG cached", "postgresql cold": "PG cold", "postgresql turns": "PG turns"}
    width, label_width = 21, 36
    out("")
    out("== figures " + "=" * 60)
    out(f"{'':{label_width}}" + "".join(f"{heads[c]:>{width}}" for c in cols))

    def row(label, fn):
        cells = []
        for c in cols:
            try:
                cells.append(fn(c))
            except (KeyError, TypeError, ZeroDivisionError, IndexError, AttributeError):
                cells.append("-")
        out(f"{label:{label_width}}" + "".join(f"{cell:>{width}}" for cell in cells))

    def over(value: str, c: str, hot: float, base: float) -> str:
        return value if c == "raw" else f"{value} ({ratio(hot / base)})"

    def pt(c: str, n: int):
        return {p.n: p for p in results[c]["growth"]}[n]

    r = results
    row("(a) starts/s", lambda c: over(f"{r[c]['starts'].rate:,.0f}", c, raw["starts"].rate, r[c]["starts"].rate))
    row("    start latency (median)",
        lambda c: over(ms(r[c]["starts"].latency), c, r[c]["starts"].latency, raw["starts"].latency))
    row("(b) completions/s", lambda c: over(f"{r[c]['completions'].rate:,.0f}", c, raw["completions"].rate,
                                             r[c]["completions"].rate))
    row("    completion latency (median)", lambda c: over(ms(r[c]["completions"].latency), c,
                                                          r[c]["completions"].latency, raw["completions"].latency))
    row("    live-cache hits/misses in (b)", lambda c: "{}/{}".format(*r[c]["cache (b)"]))
    row("    floor: 1-UPDATE transaction", lambda c: f"{ms(r[c]['floor'].latency)} ({r[c]['floor'].rate:,.0f}/s)")
    first, last = args.checkpoints[0], args.checkpoints[-1]
    for i, cp in enumerate(args.checkpoints):
        row(f"(c) completion @{cp}" + (" (fresh)" if i == 0 else ""),
            lambda c, cp=cp: over(ms(pt(c, cp).latency), c, pt(c, cp).latency, pt("raw", cp).latency))
    row(f"    @{last} / @{first} (medians)", lambda c: ratio(pt(c, last).latency / pt(c, first).latency))
    row(f"    mean @{last}", lambda c: ms(statistics.mean(pt(c, last).samples)))
    row(f"    @{last} / @{first} (means)",
        lambda c: ratio(statistics.mean(pt(c, last).samples) / statistics.mean(pt(c, first).samples)))
    for cp in args.checkpoints:
        row(f"    state size @{cp}", lambda c, cp=cp: f"{pt(c, cp).state_bytes / 1024:,.0f} KiB")

    def serde(c: str, cp: int) -> str:
        load, dump, kept = pt(c, cp).serde
        spent = kept if "cold" not in c else load + dump
        return f"{ms(spent)} ({spent / pt(c, cp).latency * 100:.0f}%)"

    for cp in args.checkpoints:
        row(f"    state dump | load+dump @{cp}", lambda c, cp=cp: serde(c, cp))
    row("    kept workflows found outdated", lambda c: str(r[c]["outdated"]))
    row("    growth run (untimed ramp incl.)", lambda c: f"{r[c]['growth_seconds']:.1f} s")
    out("(x) after a Hotline figure: Hotline time / raw time in this run (persistence overhead).")
    out("cold: live_workflows=0, every call reads the state. A start reads no state: (a) is measured once.")
    out("turns: two cached engines take turns on the ticket (two processes): each timed completion finds its "
        "kept workflow one step old and catches it up (app/engine/catch_up.py); (c) only.")
    out("state dump (cached) | load+dump (cold): state.dump of a workflow dumped before (finished tasks' JSON "
        "kept) / state.load + first state.dump of the stored state, timed alone; % of that completion.")

    out("")
    out("== targets (issue: PostgreSQL, one process) " + "=" * 26)
    for name in cols[1:]:
        res = results[name]
        g = {p.n: p for p in res["growth"]}
        checks = []
        if "starts" in res:
            checks.append((f">= {TARGET_STARTS:.0f} starts/s", res["starts"].rate >= TARGET_STARTS,
                           f"{res['starts'].rate:,.0f}/s"))
        if "completions" in res:
            checks.append((f">= {TARGET_COMPLETIONS:.0f} completions/s", res["completions"].rate >= TARGET_COMPLETIONS,
                           f"{res['completions'].rate:,.0f}/s"))
        if "starts" in res:
            x = res["starts"].latency / raw["starts"].latency
            checks.append((f"start overhead <= {TARGET_OVERHEAD:.0f}x raw", x <= TARGET_OVERHEAD, ratio(x)))
        if "completions" in res:
            x = res["completions"].latency / raw["completions"].latency
            checks.append((f"completion overhead <= {TARGET_OVERHEAD:.0f}x raw", x <= TARGET_OVERHEAD, ratio(x)))
        if 1000 in g and first in g:
            x = g[1000].latency / g[first].latency
            checks.append((f"completion @1000 <= {TARGET_GROWTH:.0f}x @{first}", x <= TARGET_GROWTH, ratio(x)))
        out(f"{heads[name]}{' (targets apply here)' if name.startswith('postgresql') else ' (for comparison)'}:")
        for what, ok, value in checks:
            out(f"  {'MET   ' if ok else 'MISSED'} {what:34} {value}")

    passed = True
    if "stall" in results:
        out("")
        out(f"== stall check: past {args.stall_rounds} loop rounds " + "=" * 38)
        for name, found in results["stall"].items():
            details = ", ".join(f"{k} {v}" for k, v in found.items() if k != "ok")
            if found["ok"]:
                out(f"  ok     {name:11} {details}")
            else:
                passed = False
                out(f"  {'!' * 70}\n  FAILED {name:11} {details}\n  {'!' * 70}")
        out("  (raw runs with the max_depth that app.engine lifted at import: it shows the lift works, "
            "not SpiffWorkflow's own default)")
    out("")
    out(f"load average at start {results['machine']['load average at start']}, at end {load_average()}; "
        + ("GC tuned (app.tuning.tune_gc)" if not args.no_gc_tuning else "GC untuned (--no-gc-tuning)"))
    return "\n".join(lines), passed


def main_figures(args) -> int:
    results: dict = {"machine": machine(), "stall": {}}
    if args.no_stall_check:
        del results["stall"]
    print(f"machine: {results['machine']}", flush=True)
    started = perf_counter()
    run_raw(args, results)
    for backend in args.backends:
        run_backend(backend, args, results)
    text, passed = report(results, args)
    print(text)
    print(f"\ntotal {perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, default=lambda o: o.__dict__, indent=2))
    if not passed:
        print("\nFAILED: the stall check did not pass (see above)", file=sys.stderr)
    return 0 if passed else 1


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="sqlite,postgresql", help="comma list: sqlite,postgresql")
    p.add_argument("--starts", type=int, default=400, help="timed starts per engine (a)")
    p.add_argument("--completions", type=int, default=400,
                   help="timed completions per engine (b); above 512 the cached engine starts to miss")
    p.add_argument("--rounds", type=int, default=5, help="rounds per rate; the median round is reported")
    p.add_argument("--warmup", type=int, default=30, help="untimed starts + completions first")
    p.add_argument("--checkpoints", default="0,10,100,1000",
                   help="growth curve: completions before the timed ones (c); the first is 'fresh'")
    p.add_argument("--timed", type=int, default=9, help="timed completions at each checkpoint")
    p.add_argument("--stall-rounds", type=int, default=600, help="the stall check asserts more loop rounds than this")
    p.add_argument("--no-stall-check", action="store_true", help="skip the stall check")
    p.add_argument("--no-gc-tuning", action="store_true",
                   help="keep Python's default GC instead of app.tuning.tune_gc() (what production runs)")
    p.add_argument("--pg-server", default=os.environ.get("HOTLINE_BENCH_PG_SERVER", DEFAULT_PG_SERVER))
    p.add_argument("--pg-database", default="hotline_bench")
    p.add_argument("--keep-db", action="store_true", help="keep the benchmark databases")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--profile", action="store_true",
                   help="instead of the figures: profile start and completion on PostgreSQL (bench/profile.py)")
    p.add_argument("--profile-ops", type=int, default=200, help="operations per fresh profile")
    p.add_argument("--profile-depth", type=int, default=1000, help="completions before the deep profiles")
    p.add_argument("--profile-deep-ops", type=int, default=20, help="completions profiled at that depth")
    p.add_argument("--profile-dir", default=str(HERE / "profiles"))
    args = p.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.checkpoints = sorted({int(x) for x in args.checkpoints.split(",")})
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.no_gc_tuning:
        tune_gc()  # what wsgi.py and workers/__main__.py do at start-up
    if args.profile:
        from .profile import main_profile

        main_profile(args)
        return 0
    return main_figures(args)


if __name__ == "__main__":
    sys.exit(main())

"""bench.state_ab runs: another state.py against this one (here, this one against itself)."""
from __future__ import annotations

from pathlib import Path

from bench import state_ab

ROOT = Path(__file__).resolve().parent.parent


def test_the_state_ab_benchmark_times_both_versions(capsys):
    assert state_ab.main([str(ROOT / "app" / "engine" / "state.py"), "--rounds", "20", "--pairs", "3"]) == 0
    out = capsys.readouterr().out
    assert "20 rounds, 48 tasks" in out and "other  median" in out and "this / other (medians):" in out


def test_the_phases_of_a_load_are_timed_apart(capsys):
    args = [str(ROOT / "app" / "engine" / "state.py"), "--rounds", "20", "--pairs", "3", "--phases"]
    assert state_ab.main(args) == 0
    out = capsys.readouterr().out
    for phase in ("parse", "lines", "from_dict", "seed", "dump"):
        assert f"    {phase} " in out, out

"""bench/timers.py still runs (tiny sizes, SQLite, real workers): no timing is asserted here."""
from __future__ import annotations

import pytest
from support import redis_server_url

from bench import timers


@pytest.mark.redis
def test_the_timer_benchmark_runs_and_fires_every_timer_once():
    results = timers.main(["--backends", "sqlite", "--waiting", "30", "--due", "6", "--workers", "2",
                           "--modes", "sweep,both", "--idle-sizes", "0,12", "--idle-runs", "2", "--lead", "4",
                           "--fire-timeout", "60", "--redis-url", redis_server_url(), "--no-gc-tuning"])
    [sqlite] = results
    assert sorted(sqlite["idle"]) == [0, 12]
    assert sqlite["idle"][12]["waiting"] >= 12
    assert "timers" in sqlite["idle"][12]["steps"] and sqlite["idle"][12]["sweep"] > 0
    assert "ix_timer_due_at" in sqlite["plan"]  # the sweep reads due timers through the due_at index
    for run in sqlite["fire"]:
        assert (run["fired_once"], run["fired_twice_or_more"], run["never_fired"], run["timers_left"]) == (6, 0, 0, 0)
    assert [run["mode"] for run in sqlite["fire"]] == ["sweep", "both"]

"""Test-only service operations, registered when a worker runs with HOTLINE_TEST_SERVICES=1.

``test.pause`` lets a test kill a worker in the middle of an engine transaction: each call
appends a line to ``$HOTLINE_TEST_PAUSE_FILE.calls``, then waits while the pause file exists.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from app.services.registry import operation


@operation("test.pause")
def pause(label: str = "") -> dict:
    """Test-only: record the call, then wait while the pause file exists (at most 60 s); "boom" fails."""
    if label == "boom":
        raise RuntimeError("the test service was told to fail")
    pause_file = Path(os.environ.get("HOTLINE_TEST_PAUSE_FILE", "/nonexistent"))
    with open(f"{pause_file}.calls", "a") as calls:
        calls.write(f"{os.getpid()} {label}\n")
    deadline = time.monotonic() + 60
    while pause_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"paused": label}

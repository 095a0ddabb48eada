"""Demo data for the embedded mode: staff in their groups, and a few sample tickets."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import ProcessInstance

from . import identity

DEMO_USERS = [
    # (username, display name, groups)
    ("li.na", "Li Na 李娜", ["hotline"]),
    ("wang.wei", "Wang Wei 王伟", ["hotline"]),
    ("zhang.min", "Zhang Min 张敏", ["hotline-supervisors", "hotline"]),
    ("chen.jie", "Chen Jie 陈杰", ["water-dept"]),
    ("liu.yang", "Liu Yang 刘洋", ["finance"]),
]
DEMO_GROUPS = {
    "hotline": "Hotline agents 热线坐席",
    "hotline-supervisors": "Hotline supervisors 热线班长",
    "water-dept": "Water department 供水部门",
    "finance": "Finance 财务",
}


def seed_users(session: Session) -> list[str]:
    """Create the demo staff (idempotent); each password is ``demo-<username>``."""
    for name, title in DEMO_GROUPS.items():
        identity.ensure_group(session, name, title)
    for username, display, groups in DEMO_USERS:
        user = identity.ensure_user(session, username, display_name=display, groups=groups)
        if user.password_hash is None:
            identity.set_password(user, f"demo-{username}")
    return [u for u, _, _ in DEMO_USERS]


def has_instances(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(ProcessInstance)))

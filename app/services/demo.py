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
    ("gao.yan", "Gao Yan 高燕", ["hotline-leads", "hotline"]),  # team lead: approves refunds first
    ("he.ming", "He Ming 何明", ["managers"]),  # approves the largest refunds
    ("huang.ying", "Huang Ying 黄颖", ["hotline-dispatch", "hotline"]),
    ("zhao.lei", "Zhao Lei 赵磊", ["power-dept"]),
    ("sun.li", "Sun Li 孙丽", ["gas-dept"]),
    ("zhou.qiang", "Zhou Qiang 周强", ["property-mgmt"]),
    ("wu.hao", "Wu Hao 吴浩", ["road-maintenance"]),
    ("ma.jun", "Ma Jun 马军", ["supervisors"]),  # duty supervisor: late work of groups with no <group>-supervisors
    ("xu.fang", "Xu Fang 徐芳", ["collections"]),  # collects IOUs (credit sales)
    ("lin.tao", "Lin Tao 林涛", ["collections-supervisors", "collections"]),  # reviews, approves write-offs
]
DEMO_GROUPS = {
    "hotline": "Hotline agents 热线坐席",
    "hotline-supervisors": "Hotline supervisors 热线班长",
    "water-dept": "Water department 供水部门",
    "collections": "Collections 催收组",
    "collections-supervisors": "Collections supervisors 催收主管",
    "hotline-dispatch": "Hotline dispatchers 热线派单员",
    "power-dept": "Power department 供电部门",
    "gas-dept": "Gas department 燃气部门",
    "property-mgmt": "Property management 物业管理",
    "road-maintenance": "Road maintenance 道路养护",
    "finance": "Finance 财务",
    "hotline-leads": "Hotline team leads 热线组长",
    "managers": "Managers 经理",
    "supervisors": "Supervisors on duty 值班主管",
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

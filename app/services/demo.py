"""Demo data for the embedded mode: staff in their groups, and a few sample tickets."""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import HotlineError
from app.models import ProcessInstance, ProcessModel

from . import identity

log = logging.getLogger("hotline.demo")

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


# --- sample tickets in every process -----------------------------------------------------------
#
# What a new user sees right after `make run`: a ticket waiting in each kind of inbox. Each sample
# is started through the engine's public API (start, claim, complete) the way staff would, and is
# found again by its title, so seeding twice opens nothing new. Dates are relative to today.

DEMO_CUSTOMERS = [
    # (phone, name, language)
    ("13800138001", "Wang Fang 王芳", "zh"),
    ("13911112222", "Chen Wei 陈伟", "zh"),
    ("13700137000", "Emily Zhou 周艾米", "en"),
    ("13600136000", "Li Jianguo 李建国", "zh"),
    ("13500135000", "Zhang Xiuying 张秀英", "zh"),
]

SAMPLE_TITLES = {
    "wo_accept": "No water at Jianguo Road 3 · 建国路3号楼停水",
    "wo_field": "Street light out, Zhongguancun St · 中关村大街路灯不亮",
    "refund": "Refund: charged twice for ORD-2026-0815 · 重复扣费退款",
    "iou": "Air conditioner in 3 installments · 空调分期付款",
    "callback": "Call back about the water bill · 回电说明水费账单",
}
SAMPLE_PROCESSES = {"wo_accept": "work_order", "wo_field": "work_order", "refund": "refund",
                    "iou": "iou_collection", "callback": "callback"}


def sample_instances(session: Session) -> dict[str, list[int]]:
    """The demo samples already on file: {sample: [instance ids]} (one each once seeded)."""
    found: dict[str, list[int]] = {name: [] for name in SAMPLE_TITLES}
    by_title = {title: name for name, title in SAMPLE_TITLES.items()}
    rows = session.execute(select(ProcessInstance.id, ProcessInstance.title)
                           .where(ProcessInstance.title.in_(list(by_title))).order_by(ProcessInstance.id))
    for instance_id, title in rows:
        found[by_title[title]].append(instance_id)
    return found


SAMPLE_CALLS = [  # answers to the call-intake form (forms/call_intake.json); each caller is registered
    {"caller_phone": "+86 138 0013 8000", "caller_name": "Zhao Lei 赵磊", "language": "zh", "reason": "repair",
     "notes": "No water since this morning, building 3", "follow_up": "work_order"},
    {"caller_phone": "+86 139 1234 5678", "caller_name": "Sun Li 孙丽", "language": "en", "reason": "inquiry",
     "notes": "Asked about the new billing cycle", "follow_up": "resolved",
     "answer": "The new cycle starts on the 1st; the first bill covers two weeks"},
]
# A call event as the telephony worker sends it: Zhao Lei calls again, so the agent's open
# task shows a known customer.
SAMPLE_CALL_EVENT = {"caller": "13800138000", "called": "12345", "call_id": "1767574800.1"}


def seed_sample_calls(engine, deployed: set[str]) -> None:
    """Call-intake samples for a fresh database (``make run``): two calls taken, one ringing
    from a known caller, one walk-in. ``deployed``: the keys of the processes deployed."""
    if "inbound_call" not in deployed:
        return
    for answers in SAMPLE_CALLS:
        instance_id = engine.start("inbound_call", {"channel": "phone"}, "li.na")
        task = engine.instance_detail(instance_id)["tasks"][0]
        engine.claim(task["id"], "li.na")
        engine.complete(task["id"], "li.na", answers)
    engine.correlate("call.inbound", payload=SAMPLE_CALL_EVENT)
    engine.start("inbound_call", {"channel": "walk_in"}, "wang.wei")


def seed_sample_tickets(db, engine, now: datetime | None = None) -> dict[str, int]:
    """Open the sample tickets that are not there yet; returns {sample: instance id} of those opened.

    ``db``: the Database; ``engine``: the ProcessEngine (its public API only); ``now``: the engine's
    clock (default: the time now), from which the IOU's due dates and the callback's time are set.
    Creates the demo staff and customers it needs; the library must be deployed (a process that is
    not gets no sample). Idempotent: a sample whose ticket exists (by its title) is left alone.
    """
    from . import customers, dunning

    with db.transaction() as s:
        seed_users(s)
        ids = {phone: customers.register(phone, name, language, _session=s)["customer_id"]
               for phone, name, language in DEMO_CUSTOMERS}
        have = {name for name, found in sample_instances(s).items() if found}
        deployed = set(s.scalars(select(ProcessModel.key).where(ProcessModel.latest_version_id.is_not(None))))
        dunning_ready = bool(dunning.levels(s))
    today = (now or datetime.now(UTC)).astimezone(dunning.hotline_timezone()).date()
    opened: dict[str, int] = {}

    def do(instance_id: int, element: str, user: str, answers: dict) -> None:
        task = next(t for t in engine.instance_detail(instance_id)["tasks"] if t["element_id"] == element)
        engine.claim(task["id"], user)
        engine.complete(task["id"], user, answers)

    def wo_accept() -> int:  # classified by the hotline, waiting for the water department to accept
        phone, name, language = DEMO_CUSTOMERS[0]
        iid = engine.start("work_order", {"channel": "phone", "caller_phone": phone, "caller_name": name,
                                          "language": language, "customer_id": ids[phone]},
                           "li.na", title=SAMPLE_TITLES["wo_accept"])
        do(iid, "classify", "li.na", {
            "caller_phone": phone, "caller_name": name, "language": language, "classify_action": "dispatch",
            "category": "water", "area": "chaoyang", "address": "朝阳区建国路3号楼2单元501",
            "description": "No water since 7:00 this morning, the whole building 整栋楼早上7点起停水",
            "urgency": "urgent"})
        return iid

    def wo_field() -> int:  # accepted by the power department, the crew is on it
        phone, name, language = DEMO_CUSTOMERS[1]
        iid = engine.start("work_order", {"channel": "phone", "caller_phone": phone, "caller_name": name,
                                          "language": language, "customer_id": ids[phone]},
                           "wang.wei", title=SAMPLE_TITLES["wo_field"])
        do(iid, "classify", "wang.wei", {
            "caller_phone": phone, "caller_name": name, "language": language, "classify_action": "dispatch",
            "category": "power", "area": "haidian", "address": "海淀区中关村大街27号对面",
            "description": "Three street lights out for two nights 连续两晚三盏路灯不亮", "urgency": "normal"})
        do(iid, "accept_power", "zhao.lei", {"accept_decision": "accept",
                                             "accept_notes": "Crew B tonight 今晚B组上门"})
        return iid

    def refund() -> int:  # requested on the phone, waiting for the team lead's approval
        phone, name, language = DEMO_CUSTOMERS[2]
        iid = engine.start("refund", {"caller_phone": phone, "caller_name": name, "language": language,
                                      "customer_id": ids[phone]}, "li.na", title=SAMPLE_TITLES["refund"])
        do(iid, "complete_request", "li.na", {
            "caller_phone": phone, "caller_name": name, "language": language, "order_reference": "ORD-2026-0815",
            "amount": "680.00", "currency": "CNY", "refund_reason": "charged_twice", "method": "original_payment",
            "details": "Bank statement shows the payment twice 银行流水显示重复扣款两次"})
        return iid

    def iou() -> int:  # the first installment is overdue: the collection call is open
        phone, name, language = DEMO_CUSTOMERS[3]
        plan = [(today - timedelta(days=2), "1200.00"), (today + timedelta(days=28), "1200.00"),
                (today + timedelta(days=58), "1200.00")]
        return engine.start("iou_collection", {
            "customer_id": ids[phone], "amount": "3600.00", "currency": "CNY", "responsible_agent": "xu.fang",
            "description": "Air conditioner KFR-35GW, installed 2026 空调分期付款（含安装）",
            "installments": [{"due_date": d.isoformat(), "amount": a} for d, a in plan]},
            "xu.fang", title=SAMPLE_TITLES["iou"])

    def callback() -> int:  # the customer asked to be called back tomorrow morning
        phone, name, language = DEMO_CUSTOMERS[4]
        return engine.start("callback", {
            "kind": "requested", "phone": phone, "customer_id": ids[phone], "language": language,
            "preferred_at": f"{(today + timedelta(days=1)).isoformat()}T10:00:00",
            "note": "Asks why this month's water bill doubled 询问本月水费为何翻倍"},
            "li.na", title=SAMPLE_TITLES["callback"])

    for name, open_sample in (("wo_accept", wo_accept), ("wo_field", wo_field), ("refund", refund),
                              ("iou", iou), ("callback", callback)):
        if name in have or SAMPLE_PROCESSES[name] not in deployed or (name == "iou" and not dunning_ready):
            continue
        try:
            opened[name] = open_sample()
        except HotlineError as exc:  # a changed diagram or form must not stop `make run`: say so, go on
            log.warning("demo sample %s (%s) not opened: %s", name, SAMPLE_PROCESSES[name], exc)
    return opened

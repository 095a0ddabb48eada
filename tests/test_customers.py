"""Customers: phone normalization, and the lookup / register operations the call intake calls."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.errors import InvalidInput
from app.models import Customer, CustomerPhone, InstanceStatus, ProcessInstance, ProcessModel, ProcessVersion
from app.services import context, customers, registry
from app.services.context import NoTransaction


@pytest.mark.parametrize(("raw", "expected"), [
    ("13800138000", "+8613800138000"),
    ("138 0013 8000", "+8613800138000"),
    ("138-0013-8000", "+8613800138000"),
    ("+86 138 0013 8000", "+8613800138000"),
    ("+86-138-0013-8000", "+8613800138000"),
    ("008613800138000", "+8613800138000"),
    ("(010) 6552-9988", "+861065529988"),  # Beijing landline: trunk 0 dropped
    ("+1 (415) 555-0100", "+14155550100"),
])
def test_normalize_phone(raw, expected):
    assert customers.normalize_phone(raw) == expected


@pytest.mark.parametrize(("raw", "problem"), [
    ("", "a phone number is needed"),
    (None, "a phone number is needed"),
    ("call me", "not a valid phone number"),
    ("anonymous", "not a valid phone number"),
    ("138O0138000", "not a valid phone number"),  # letter O
    ("+86 138+0013", "not a valid phone number"),
    ("8001", "too short"),
    ("+12345678901234567", "too long"),
])
def test_normalize_phone_rejects_garbage_with_a_clear_error(raw, problem):
    with pytest.raises(InvalidInput, match=problem):
        customers.normalize_phone(raw)


def test_the_default_country_code_is_configurable(monkeypatch):
    monkeypatch.setenv(customers.COUNTRY_CODE_ENV, "+44")
    assert customers.normalize_phone("020 7946 0000") == "+442079460000"
    assert customers.normalize_phone("13800138000", country_code="86") == "+8613800138000"
    monkeypatch.setenv(customers.COUNTRY_CODE_ENV, "uk")
    with pytest.raises(ValueError, match="HOTLINE_PHONE_COUNTRY_CODE"):
        customers.normalize_phone("020 7946 0000")


def test_register_then_lookup_by_any_spelling_of_the_number(db):
    with db.transaction() as s, context.bound(s):  # as inside an engine step
        result = registry.call("customer.register", {"phone": "138 0013 8000", "name": "赵磊", "language": "zh"})
    assert result["created"] is True
    with db.transaction() as s, context.bound(s):
        found = registry.call("customer.lookup_by_phone", {"phone": "+86-138-0013-8000"})
    assert found == {"found": True, "phone": "+8613800138000", "customer_id": result["customer_id"],
                     "name": "赵磊", "language": "zh", "open_tickets": []}


def test_register_is_idempotent_for_the_same_number(db):
    with db.transaction() as s:
        first = customers.register("13800138000", "", "en", _session=s)
        again = customers.register("+8613800138000", "Zhao Lei", "zh", _session=s)
    assert again == {"customer_id": first["customer_id"], "created": False}
    with db.transaction() as s:
        assert s.scalar(select(CustomerPhone.number)) == "+8613800138000"
        customer = s.get(Customer, first["customer_id"])
        assert (customer.name, customer.language) == ("Zhao Lei", "en")  # a missing name is filled in, no more
        assert len(s.scalars(select(Customer)).all()) == 1


def test_a_customer_may_have_several_numbers(db):
    with db.transaction() as s:
        customer = Customer(name="Sun Li")
        customer.phones += [CustomerPhone(number="+8613912345678", label="mobile"),
                            CustomerPhone(number="+861065529988", label="office")]
        s.add(customer)
    with db.transaction() as s:
        mobile = customers.lookup_by_phone("139 1234 5678", _session=s)
        office = customers.lookup_by_phone("010-6552-9988", _session=s)
    assert mobile["customer_id"] == office["customer_id"] == customer.id


def test_register_rejects_bad_input(db):
    with db.transaction() as s:
        with pytest.raises(InvalidInput, match="not a valid phone number"):
            customers.register("call me", "X", "zh", _session=s)
        with pytest.raises(InvalidInput, match="language must be one of: en, zh"):
            customers.register("13800138000", "X", "fr", _session=s)
        assert s.scalars(select(Customer)).all() == []


@pytest.mark.parametrize("phone", ["", None, "anonymous", "8001"])
def test_lookup_of_a_withheld_or_internal_number_finds_nobody(db, phone):
    with db.transaction() as s:
        assert customers.lookup_by_phone(phone, _session=s) == {
            "found": False, "phone": None, "customer_id": None, "name": None, "language": None, "open_tickets": []}


def test_lookup_of_an_unknown_number(db):
    with db.transaction() as s:
        result = customers.lookup_by_phone("13800000009", _session=s)
    assert (result["found"], result["phone"], result["customer_id"]) == (False, "+8613800000009", None)


def test_lookup_lists_open_tickets_newest_first_and_history_lists_all(db):
    with db.transaction() as s:
        cid = customers.register("13800138000", "Zhao Lei", "zh", _session=s)["customer_id"]
        model = ProcessModel(key="inbound_call", title="Call intake", file="inbound_call.bpmn",
                             business_key_prefix="CALL")
        s.add(model)
        s.flush()
        version = ProcessVersion(model_id=model.id, number=1, sha256="0" * 64, dialect="spiff",
                                 files={}, elements={}, deployed_by="admin")
        s.add(version)
        s.flush()
        for n, status in enumerate([InstanceStatus.COMPLETED, InstanceStatus.WAITING, InstanceStatus.ERROR]):
            s.add(ProcessInstance(version_id=version.id, business_key=f"CALL-2026-00000{n}", status=status,
                                  customer_id=cid, state="", started_by="li.na"))
        s.add(ProcessInstance(version_id=version.id, business_key="CALL-2026-000009", status="waiting",
                              customer_id=None, state="", started_by="li.na"))
    with db.transaction() as s:
        found = customers.lookup_by_phone("13800138000", _session=s)
        history = [t.business_key for t in customers.tickets(s, cid)]
    assert found["open_tickets"] == ["CALL-2026-000002", "CALL-2026-000001"]
    assert history == ["CALL-2026-000002", "CALL-2026-000001", "CALL-2026-000000"]


def test_operations_are_registered_with_their_diagram_parameters():
    assert registry.get("customer.lookup_by_phone").parameters == ["phone"]
    assert registry.get("customer.register").parameters == ["phone", "name", "language", "label"]


def test_an_operation_needing_the_database_outside_a_transaction_says_so():
    with pytest.raises(NoTransaction, match="runs inside an engine step"):
        registry.call("customer.lookup_by_phone", {"phone": "13800138000"})

"""Task forms: fields required only under a condition (a return needs its reason)."""
from __future__ import annotations

import pytest

from app.errors import InvalidInput
from app.schemas.forms import FormError, check_definition, clean, load_text

DECISION = {
    "title": {"en": "Accept the work order", "zh": "受理工单"},
    "fields": [
        {"name": "decision", "type": "choice", "required": True, "label": {"en": "Decision", "zh": "处理"},
         "choices": ["accept", "return", "transfer"]},
        {"name": "reason", "type": "text", "label": {"en": "Reason", "zh": "原因"},
         "required_if": {"decision": ["return", "transfer"]}},
        {"name": "score", "type": "integer", "min": 1, "max": 5, "label": {"en": "Score", "zh": "评分"}},
        {"name": "comment", "type": "text", "label": {"en": "Comment", "zh": "意见"},
         "required_if": {"score": [1, 2]}},
    ],
}


def test_a_return_without_its_reason_is_refused_and_named():
    with pytest.raises(InvalidInput) as err:
        clean(DECISION, {"decision": "return"})
    assert "reason: This field is required when decision is return." in str(err.value)
    assert err.value.detail["fields"] == {"reason": ["This field is required when decision is return."]}


@pytest.mark.parametrize("reason", [None, "", "   "[:0]])
def test_an_empty_reason_counts_as_missing(reason):
    with pytest.raises(InvalidInput, match="reason"):
        clean(DECISION, {"decision": "transfer", "reason": reason})


def test_the_condition_not_holding_leaves_the_field_optional():
    assert clean(DECISION, {"decision": "accept"})["decision"] == "accept"
    assert clean(DECISION, {"decision": "return", "reason": "not ours"})["reason"] == "not ours"


def test_numbers_compare_with_the_listed_values():
    with pytest.raises(InvalidInput, match="comment: This field is required when score is 2"):
        clean(DECISION, {"decision": "accept", "score": "2"})
    assert clean(DECISION, {"decision": "accept", "score": 4})["score"] == 4


def test_a_missing_decision_is_reported_as_itself_not_as_the_condition():
    with pytest.raises(InvalidInput) as err:
        clean(DECISION, {})
    assert set(err.value.detail["fields"]) == {"decision"}


@pytest.mark.parametrize("condition, problem", [
    ({"nope": ["x"]}, "'required_if' names 'nope', which is not another field"),
    ({"decision": []}, "needs a non-empty list of values for 'decision'"),
    ({"decision": ["maybe"]}, "lists ['maybe'] for 'decision', which are not among its choices"),
    (["decision"], "'required_if' must map field names to lists of values"),
])
def test_a_bad_condition_in_a_form_file_is_named(condition, problem):
    form = {"fields": [DECISION["fields"][0], {"name": "reason", "type": "text", "required_if": condition}]}
    assert any(problem in p for p in check_definition(form)), check_definition(form)
    with pytest.raises(FormError, match="reason"):
        import json
        load_text(json.dumps(form), "forms/x.json")


MONEY = {"fields": [{"name": "amount", "type": "money", "required": True, "min": 0.01}]}


@pytest.mark.parametrize("entered, problem", [
    ("10.005", "at most 2 decimal places"), ("0", "greater than or equal to 0.01"), ("ten", "Not a valid number"),
    ("NaN", "Special numeric values"), ("Infinity", "Special numeric values"),
])
def test_money_with_a_third_decimal_is_refused_not_rounded(entered, problem):
    with pytest.raises(InvalidInput, match=problem):
        clean(MONEY, {"amount": entered})


def test_money_keeps_its_exact_value():
    from decimal import Decimal

    assert clean(MONEY, {"amount": "10.5"})["amount"] == Decimal("10.5")
    assert clean(MONEY, {"amount": "1999.99"})["amount"] == Decimal("1999.99")

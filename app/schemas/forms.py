"""Task forms: their definition files (forms/<key>.json) and the validation of what staff enter.

A form file names its fields, their types, labels in English and Chinese, and rules::

    {"title": {"en": "Call intake", "zh": "来电登记"},
     "fields": [{"name": "amount", "type": "money", "required": true,
                 "label": {"en": "Amount", "zh": "金额"}}]}

Field types: string, text, phone, email, integer, number, money, boolean, date, datetime,
choice (one of ``choices``), multichoice (several). A field with
``"required_if": {"decision": ["return", "transfer"]}`` is required only when every named
field's entered value is one of those listed (a return needs its reason). Entered data is checked with a
marshmallow schema built from the file, so a bad value is an error that names the field.
Forms that Camunda Modeler defines inside the diagram (camunda:formData) work the same way.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validate

from app.errors import InvalidInput

FIELD_TYPES = ("string", "text", "phone", "email", "integer", "number", "money", "boolean", "date", "datetime",
               "choice", "multichoice")
_CAMUNDA_TYPES = {"string": "string", "long": "integer", "boolean": "boolean", "date": "date", "enum": "choice"}
_PHONE = re.compile(r"^\+?[0-9][0-9 \-()]{2,30}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FormError(ValueError):
    """A form definition that cannot be used; the message names the field."""


def _choice_values(field: dict) -> list[str]:
    return [str(c["value"] if isinstance(c, dict) else c) for c in field.get("choices", [])]


def check_definition(form: Any) -> list[str]:
    """Problems with a form definition (empty when it is usable)."""
    if not isinstance(form, dict):
        return ["a form file must hold a JSON object"]
    problems = []
    items = form.get("fields")
    if not isinstance(items, list):
        return ["'fields' must be a list"]
    seen = set()
    for n, field in enumerate(items, 1):
        if not isinstance(field, dict):
            problems.append(f"field {n} must be an object")
            continue
        name = field.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"field {n} needs a 'name' usable as a variable (letters, digits, _)")
            continue
        if name in seen:
            problems.append(f"field '{name}' appears twice")
        seen.add(name)
        kind = field.get("type", "string")
        if kind not in FIELD_TYPES:
            problems.append(f"field '{name}' has unknown type '{kind}' (use one of: {', '.join(FIELD_TYPES)})")
        if kind in ("choice", "multichoice") and not field.get("choices"):
            problems.append(f"field '{name}' of type {kind} needs 'choices'")
    by_name = {f.get("name"): f for f in items if isinstance(f, dict)}
    for field in items:
        if isinstance(field, dict) and "required_if" in field:
            problems.extend(_required_if_problems(field, by_name))
    return problems


def _required_if_problems(field: dict, by_name: dict) -> list[str]:
    name, condition = field.get("name"), field["required_if"]
    if not isinstance(condition, dict) or not condition:
        return [f"field '{name}': 'required_if' must map field names to lists of values"]
    problems = []
    for other, values in condition.items():
        if other not in by_name or other == name:
            problems.append(f"field '{name}': 'required_if' names '{other}', which is not another field of this form")
        elif not isinstance(values, list) or not values:
            problems.append(f"field '{name}': 'required_if' needs a non-empty list of values for '{other}'")
        elif by_name[other].get("type") in ("choice", "multichoice"):
            unknown = [v for v in values if str(v) not in _choice_values(by_name[other])]
            if unknown:
                problems.append(f"field '{name}': 'required_if' lists {unknown} for '{other}', "
                                f"which are not among its choices")
    return problems


def load_text(text: str, name: str) -> dict:
    try:
        form = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormError(f"{name} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    problems = check_definition(form)
    if problems:
        raise FormError(f"{name}: " + "; ".join(problems))
    return form


def from_inline_fields(inline: list[dict]) -> dict:
    """A form definition from Camunda Modeler's formData fields."""
    out = []
    for f in inline:
        kind = _CAMUNDA_TYPES.get(f.get("type", "string"), "string")
        field = {"name": f["id"], "type": kind, "label": {"en": f.get("label") or f["id"]},
                 "required": bool(f.get("required"))}
        if kind == "choice":
            field["choices"] = [{"value": c["id"], "label": {"en": c.get("name") or c["id"]}}
                                for c in f.get("choices", [])]
        out.append(field)
    return {"fields": out, "inline": True}


def _at_most_cents(value: Decimal) -> None:
    if value != value.quantize(Decimal("0.01")):  # marshmallow refuses NaN and infinities before this
        raise ValidationError("An amount of money has at most 2 decimal places.")


def _field(spec: dict) -> fields.Field:
    kind = spec.get("type", "string")
    required = bool(spec.get("required"))
    opts: dict[str, Any] = {"required": required, "allow_none": not required}
    checks = []
    if kind in ("string", "text", "phone", "email"):
        if spec.get("max_length") or kind == "string":
            checks.append(validate.Length(max=int(spec.get("max_length") or 500)))
        if required:
            checks.append(validate.Length(min=1, error="This field may not be empty."))
        if kind == "phone":
            checks.append(validate.Regexp(_PHONE, error="Not a valid phone number."))
        if kind == "email":
            return fields.Email(validate=checks, **opts)
        return fields.String(validate=checks, **opts)
    if kind == "integer":
        rng = validate.Range(min=spec.get("min"), max=spec.get("max"))
        return fields.Integer(strict=False, validate=rng, **opts)
    if kind in ("number", "money"):
        checks = [validate.Range(min=spec.get("min"), max=spec.get("max"))]
        if kind == "money":  # refused, never rounded: 10.005 is a typo, not 10.00 or 10.01
            checks.append(_at_most_cents)
        return fields.Decimal(validate=checks, **opts)
    if kind == "boolean":
        return fields.Boolean(**opts)
    if kind == "date":
        return fields.Date(**opts)
    if kind == "datetime":
        return fields.DateTime(**opts)
    if kind == "choice":
        return fields.String(validate=validate.OneOf(_choice_values(spec)), **opts)
    if kind == "multichoice":
        return fields.List(fields.String(validate=validate.OneOf(_choice_values(spec))), **opts)
    raise FormError(f"unknown field type {kind!r}")


def schema_for(form: dict) -> Schema:
    declared = {f["name"]: _field(f) for f in form["fields"]}
    unknown = INCLUDE if form.get("inline") else RAISE
    return Schema.from_dict(declared, name="TaskForm")(unknown=unknown)


def clean(form: dict, data: dict) -> dict:
    """Validated, typed form data (money as Decimal, dates as dates), or InvalidInput.

    Fields defined inside a Camunda diagram are checked but passed on as entered, because
    such diagrams' conditions compare the raw values (SpiffWorkflow does not convert them).
    """
    try:
        loaded = schema_for(form).load(data)
        missing = _conditionally_missing(form, loaded)
        if missing:
            raise ValidationError(missing)
        return dict(data) if form.get("inline") else loaded
    except ValidationError as exc:
        parts = []
        for name, messages in sorted(exc.messages.items()):
            text = " ".join(messages) if isinstance(messages, list) else str(messages)
            parts.append(f"{name}: {text}")
        raise InvalidInput("form data is invalid: " + "; ".join(parts), fields=exc.messages) from exc


def _conditionally_missing(form: dict, loaded: dict) -> dict[str, list[str]]:
    """Fields whose ``required_if`` holds for the entered data but that were left empty.

    ``{"required_if": {"decision": ["return", "transfer"]}}``: required when every named
    field's value is one of its listed values (compared as text, so 1 and "1" agree).
    """
    missing = {}
    for field in form["fields"]:
        condition = field.get("required_if")
        if not condition or loaded.get(field["name"]) not in (None, "", []):
            continue
        holds = all(loaded.get(other) is not None and str(loaded[other]) in {str(v) for v in values}
                    for other, values in condition.items())
        if holds:
            because = " and ".join(f"{other} is {loaded[other]}" for other in condition)
            missing[field["name"]] = [f"This field is required when {because}."]
    return missing

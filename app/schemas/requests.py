"""Reading what a request sends through a marshmallow schema, for every API blueprint."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError

from app.errors import InvalidInput


def load(schema: Schema, data: Any) -> dict:
    """``schema.load(data)``, with a bad value as InvalidInput naming each field and its problem."""
    if data is None:
        raise InvalidInput("the request body must be a JSON object")
    try:
        return schema.load(data)
    except ValidationError as exc:
        problems = "; ".join(f"{name}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                             for name, msgs in sorted(exc.normalized_messages().items()))
        raise InvalidInput(f"invalid request: {problems}", fields=exc.normalized_messages()) from exc

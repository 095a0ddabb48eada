"""Small operations every deployment has; domain operations live in their own modules."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from .registry import operation


@operation("util.echo")
def echo(**values: Any) -> dict[str, Any]:
    """Return the parameters unchanged (for testing diagrams)."""
    return dict(values)


@operation("util.sum")
def money_sum(amounts: list[Any]) -> Decimal:
    """Add money amounts exactly (Decimal), e.g. installment totals."""
    return sum((Decimal(str(a)) for a in amounts), Decimal("0"))


@operation("util.fail")
def fail(message: str = "service failed") -> None:
    """Always fail: lets designers and tests exercise error boundaries and incidents."""
    raise RuntimeError(message)

"""How a service operation says that trying again will not help.

An asynchronous service task retries an operation that raises (with backoff), except
when it raises ``PermanentError``: then the task fails at once and follows the diagram's
error boundary event whose error code is ``code`` (or a catch-all one), else it becomes an
incident a manager can retry.
"""
from __future__ import annotations


class PermanentError(Exception):
    """The operation failed for good (bad input, refused by the other side): do not retry."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code

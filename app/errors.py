"""Every error Hotline raises on purpose, with the HTTP status each maps to (one place)."""
from __future__ import annotations


class HotlineError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, **detail):
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_dict(self) -> dict:
        return {"error": self.code, "message": self.message, **self.detail}


class NotFound(HotlineError):
    status = 404
    code = "not_found"


class Forbidden(HotlineError):
    status = 403
    code = "forbidden"


class Conflict(HotlineError):
    """Someone else changed it first (optimistic lock, claim race, task already done)."""

    status = 409
    code = "conflict"


class InvalidInput(HotlineError):
    """Input that names a problem the caller can fix: bad JSON, bad form data."""

    status = 422
    code = "invalid_input"


class IllegalState(HotlineError):
    """The action does not apply now (suspended instance, ended instance)."""

    status = 409
    code = "illegal_state"


class LibraryInvalid(HotlineError):
    """BPMN/DMN files failed validation; ``problems`` names file, element and reason."""

    status = 422
    code = "invalid_bpmn"

    def __init__(self, problems: list):
        self.problems = problems
        first = problems[0] if problems else None
        summary = str(first) if first else "invalid process library"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(summary + more, problems=[p.to_dict() for p in problems])


class DatabaseUnavailable(HotlineError):
    """The database cannot be used: not reachable, or not migrated to this version's schema."""

    status = 503
    code = "database_unavailable"


class StepFailed(HotlineError):
    """A script, condition or service task failed; the instance kept its last wait state."""

    status = 422
    code = "step_failed"

    def __init__(self, message: str, element_id: str | None, incident_id: int | None):
        super().__init__(message, element_id=element_id, incident_id=incident_id)
        self.element_id = element_id
        self.incident_id = incident_id

"""Satisfaction surveys: who is asked (sampling, a per-customer limit), their answers, reports.

``survey.should_survey`` decides for one callback: a ticket is sampled when a hash of its
business key falls below the sample rate (the same ticket always gets the same answer, so
scenarios and retried steps agree), and a customer asked within the last ``min_days`` days
(answered or not, or still being asked) is not asked again. A sampled survey is written
at once as a pending ``survey_result`` row; ``survey.store`` records how the callback
ended (answered with the score, refused, wrong number, unreachable).
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import SurveySettings
from app.errors import InvalidInput, NotFound
from app.models import HumanTask, ProcessInstance, ProcessModel, ProcessVersion, TaskStatus
from app.models.customer import LANGUAGES
from app.models.survey import SCORES, SurveyOutcome, SurveyResult

from . import callbacks  # noqa: F401  (registers the callback.* operations)
from .registry import operation

DEFAULT_GROUP = "hotline"
REPORT_GROUPINGS = ("group", "process", "month", "week", "day", "agent")


def sampled(ticket: str, rate: float) -> bool:
    """Whether ``ticket`` falls in a sample of ``rate`` (0..1): the same ticket always gives the same answer."""
    if rate >= 1:
        return True
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"survey:{ticket}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def _moment(value: Any, what: str) -> datetime:
    if value in (None, ""):
        return datetime.now(UTC)
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise InvalidInput(f"{what} {value!r} is not an ISO date and time", field=what) from exc
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def last_asked(session: Session, customer_id: int, since: datetime, exclude_instance: int | None = None
               ) -> SurveyResult | None:
    """The customer's latest survey asked at or after ``since`` (any outcome, pending included)."""
    query = select(SurveyResult).where(SurveyResult.customer_id == customer_id, SurveyResult.asked_at >= since)
    if exclude_instance is not None:
        query = query.where(SurveyResult.instance_id.is_distinct_from(exclude_instance))
    return session.scalars(query.order_by(SurveyResult.asked_at.desc()).limit(1)).first()


def _process_of(session: Session, business_key: str) -> str:
    if not business_key:
        return ""
    key = session.scalar(select(ProcessModel.key).join(ProcessVersion, ProcessVersion.model_id == ProcessModel.id)
                         .join(ProcessInstance, ProcessInstance.version_id == ProcessVersion.id)
                         .where(ProcessInstance.business_key == business_key))
    return key or ""


@operation("survey.should_survey")
def should_survey(customer_id: int | None, source_ticket: str | None = None, sample_rate: float | None = None,
                  min_days: int | None = None, language: str | None = None, group: str | None = None,
                  at: str | None = None, *, _session: Session, _instance_id: int) -> dict[str, Any]:
    """Ask this customer for a survey now? {survey, reason, detail, survey_id}; a yes is recorded as pending."""
    defaults = SurveySettings.from_env()
    rate = defaults.sample_rate if sample_rate is None else float(sample_rate)
    days = defaults.min_days if min_days is None else int(min_days)
    moment = _moment(at, "at")
    existing = _session.scalar(select(SurveyResult).where(SurveyResult.instance_id == _instance_id))
    if existing is not None:  # this step ran before (a retried step): same answer
        return {"survey": True, "reason": "sampled", "detail": "already sampled", "survey_id": existing.id}
    instance = _session.get(ProcessInstance, _instance_id)
    ticket = (source_ticket or "").strip() or (instance.business_key if instance else str(_instance_id))
    if customer_id in (None, ""):
        return {"survey": False, "reason": "no_customer", "survey_id": None,
                "detail": "the number belongs to no customer on file"}
    if not sampled(ticket, rate):
        return {"survey": False, "reason": "not_sampled", "survey_id": None,
                "detail": f"ticket {ticket} is not in the {rate:.0%} sample"}
    earlier = last_asked(_session, int(customer_id), moment - timedelta(days=days), _instance_id) if days else None
    if earlier is not None:
        return {"survey": False, "reason": "surveyed_recently", "survey_id": None,
                "detail": f"asked on {earlier.asked_at.date().isoformat()} ({earlier.business_key or earlier.id}); "
                          f"at most one survey in {days} days"}
    source = (source_ticket or "").strip()
    row = SurveyResult(customer_id=int(customer_id), instance_id=_instance_id,
                       business_key=instance.business_key if instance else "", source_ticket=source,
                       process=_process_of(_session, source), group_name=(group or DEFAULT_GROUP)[:100],
                       language=language if language in LANGUAGES else "zh", asked_at=moment)
    _session.add(row)
    _session.flush()
    return {"survey": True, "reason": "sampled", "detail": f"ticket {ticket} is in the {rate:.0%} sample",
            "survey_id": row.id}


def _last_agent(session: Session, instance_id: int | None) -> str | None:
    if instance_id is None:
        return None
    return session.scalar(select(HumanTask.completed_by).where(
        HumanTask.instance_id == instance_id, HumanTask.status == TaskStatus.COMPLETED)
        .order_by(HumanTask.completed_at.desc(), HumanTask.id.desc()).limit(1))


@operation("survey.store")
def store(survey_id: int, outcome: str, score: int | None = None, comment: str | None = "",
          resolved: bool | None = None, agent: str | None = None, at: str | None = None,
          low_score: int | None = None, *, _session: Session) -> dict[str, Any]:
    """Record how a survey callback ended (answered with score/comment/resolved, refused, wrong number, unreachable)."""
    row = _session.get(SurveyResult, survey_id)
    if row is None:
        raise NotFound(f"survey {survey_id} does not exist")
    if outcome not in SurveyOutcome.CLOSED:
        raise InvalidInput(f"outcome must be one of: {', '.join(SurveyOutcome.CLOSED)} (got {outcome!r})",
                           field="outcome")
    moment = _moment(at, "at")
    low = SurveySettings.from_env().low_score if low_score is None else int(low_score)
    if outcome == SurveyOutcome.ANSWERED:
        if isinstance(score, bool) or score not in SCORES:
            raise InvalidInput(f"an answered survey needs a score from 1 to 5 (got {score!r})", field="score")
        if resolved is not None and not isinstance(resolved, bool):
            raise InvalidInput(f"resolved must be true or false (got {resolved!r})", field="resolved")
        row.score, row.resolved, row.answered_at = int(score), resolved, moment
        row.comment = (comment or "").strip()
    row.outcome, row.closed_at = outcome, moment
    row.agent = (agent or _last_agent(_session, row.instance_id) or None)
    return {"survey_id": row.id, "outcome": row.outcome, "score": row.score,
            "low": row.score is not None and row.score <= low}


# --- reports ---------------------------------------------------------------------------------

def results(session: Session, since: datetime | None = None, until: datetime | None = None,
            outcome: str | None = None) -> list[SurveyResult]:
    """Surveys asked in [since, until), newest first."""
    query = select(SurveyResult)
    if since is not None:
        query = query.where(SurveyResult.asked_at >= since)
    if until is not None:
        query = query.where(SurveyResult.asked_at < until)
    if outcome is not None:
        if outcome not in SurveyOutcome.ALL:
            raise InvalidInput(f"outcome must be one of: {', '.join(SurveyOutcome.ALL)} (got {outcome!r})")
        query = query.where(SurveyResult.outcome == outcome)
    return list(session.scalars(query.order_by(SurveyResult.asked_at.desc(), SurveyResult.id.desc())))


def as_dict(row: SurveyResult) -> dict[str, Any]:
    return {"id": row.id, "ticket": row.business_key, "source_ticket": row.source_ticket, "process": row.process,
            "group": row.group_name, "customer_id": row.customer_id, "outcome": row.outcome, "score": row.score,
            "comment": row.comment, "resolved": row.resolved, "language": row.language, "agent": row.agent,
            "asked_at": row.asked_at, "answered_at": row.answered_at}


def _bucket(row: SurveyResult, by: str, zone) -> str:
    if by == "group":
        return row.group_name or "-"
    if by == "process":
        return row.process or "-"
    if by == "agent":
        return row.agent or "-"
    local = row.asked_at.astimezone(zone)
    if by == "month":
        return local.strftime("%Y-%m")
    if by == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.date().isoformat()


def report(rows: list[SurveyResult], by: str = "group", low_score: int | None = None, zone=UTC
           ) -> list[dict[str, Any]]:
    """Per group (or process, agent, day/week/month asked): surveys asked and answered, the average
    score, and the share of answered surveys with a low score (at most ``low_score``)."""
    if by not in REPORT_GROUPINGS:
        raise InvalidInput(f"report by must be one of: {', '.join(REPORT_GROUPINGS)} (got {by!r})")
    low = SurveySettings.from_env().low_score if low_score is None else low_score
    buckets: dict[str, list[SurveyResult]] = defaultdict(list)
    for row in rows:
        buckets[_bucket(row, by, zone)].append(row)
    out = []
    for key in sorted(buckets):
        group = buckets[key]
        scores = [r.score for r in group if r.outcome == SurveyOutcome.ANSWERED and r.score is not None]
        average = (Decimal(sum(scores)) / len(scores)).quantize(Decimal("0.01"), ROUND_HALF_UP) if scores else None
        low_share = (Decimal(sum(1 for s in scores if s <= low)) / len(scores)).quantize(
            Decimal("0.001"), ROUND_HALF_UP) if scores else None
        out.append({by: key, "asked": len(group), "answered": len(scores), "average_score": average,
                    "low_scores": sum(1 for s in scores if s <= low), "low_share": low_share,
                    "unresolved": sum(1 for r in group if r.outcome == SurveyOutcome.ANSWERED and r.resolved is False)})
    return out

"""flask --app wsgi surveys list [--since DATE] [--until DATE] [--outcome O] [--json]
flask --app wsgi surveys report [--by group|process|agent|month|week|day] [--since DATE] [--until DATE] [--json]"""
from __future__ import annotations

from zoneinfo import ZoneInfo

import click

from app.models.survey import SurveyOutcome
from app.services import surveys as survey_service

from .common import HotlineGroup, emit, hotline, json_option, moment, table

surveys = HotlineGroup("surveys", help="Satisfaction surveys made by callbacks, and their scores.")


def _zone() -> ZoneInfo:
    return ZoneInfo(hotline().settings.timezone)



_PERIOD = [click.option("--since", help="Asked at or after this date (2026-03-01, hotline time zone)."),
           click.option("--until", help="Asked before this date.")]


def _period(func):
    for option in reversed(_PERIOD):
        func = option(func)
    return func


@surveys.command("list")
@_period
@click.option("--outcome", type=click.Choice(SurveyOutcome.ALL), help="Only surveys that ended this way.")
@json_option
def list_surveys(since, until, outcome):
    """Surveys, newest first: ticket, customer, score, comment, who called."""
    with hotline().db.transaction() as s:
        rows = [survey_service.as_dict(r) for r in
                survey_service.results(s, moment(since, "--since"), moment(until, "--until"), outcome)]

    def human(rows):
        zone = _zone()
        table([{**r, "asked_at": r["asked_at"].astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                "resolved": {True: "yes", False: "no"}.get(r["resolved"], "")} for r in rows],
              [("asked_at", "ASKED"), ("ticket", "TICKET"), ("source_ticket", "ABOUT"), ("group", "GROUP"),
               ("customer_id", "CUSTOMER"), ("outcome", "OUTCOME"), ("score", "SCORE"), ("resolved", "RESOLVED"),
               ("agent", "AGENT"), ("comment", "COMMENT")], empty="(no surveys)")

    emit(rows, human)


@surveys.command("report")
@click.option("--by", "by", type=click.Choice(survey_service.REPORT_GROUPINGS), default="group", show_default=True,
              help="One line per group, process, agent, or per month/week/day asked.")
@_period
@json_option
def report(by, since, until):
    """Surveys asked and answered, average score and share of low scores (HOTLINE_SURVEY_LOW_SCORE)."""
    low = hotline().settings.surveys.low_score
    with hotline().db.transaction() as s:
        rows = survey_service.report(survey_service.results(s, moment(since, "--since"), moment(until, "--until")),
                                     by, low, _zone())

    def human(rows):
        table([{**r, "low_share": "" if r["low_share"] is None else f"{r['low_share'] * 100:.1f}%"} for r in rows],
              [(by, by.upper()), ("asked", "ASKED"), ("answered", "ANSWERED"), ("average_score", "AVERAGE"),
               ("low_scores", f"LOW (<={low})"), ("low_share", "LOW SHARE"), ("unresolved", "UNRESOLVED")],
              empty="(no surveys)")

    emit(rows, human)

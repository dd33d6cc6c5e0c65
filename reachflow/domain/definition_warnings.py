"""Warnings about a definition that is valid but will not do what it seems to say: answered
by the validate endpoints beside the problems (``docs/workflows.md``, "Validating").

* ``never_in_window``: a step whose schedules never open together: the workflow's
  ``workflowSchedule``, and for a step that ``needsTCPACompliance`` its ``tcpaSchedule`` and the
  federal calling hours, all read in the workflow's time zone, over the next 14 days. (A
  contact's own zone and state rules can only close it further.)
* ``retries_beyond_caps``: a retry policy that would make more attempts within a frequency
  cap's rolling window than the cap allows (Florida: 3 calls in 24 hours): the extra retries
  wait for the cap, later than their delay says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from reachflow.domain.compliance.rules import FEDERAL, RuleSet
from reachflow.domain.graph import ActionConfig, Graph, RetryRule
from reachflow.domain.schedule import WeekSchedule
from reachflow.domain.windows import Interval, intersect, schedule_intervals

LOOK_AHEAD = timedelta(days=14)


@dataclass(frozen=True, slots=True)
class Warning:
    code: str
    field: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "field": self.field, "message": self.message}


def definition_warnings(
    graph: Graph,
    *,
    paths: Mapping[str, str],
    timezone: str,
    workflow_schedule: WeekSchedule | None,
    tcpa_schedule: WeekSchedule | None,
    rules: RuleSet,
    now: datetime,
) -> list[Warning]:
    """Warnings for the ACTION nodes named in ``paths`` (node id -> the field path to name)."""
    zone = ZoneInfo(timezone)
    end = now + LOOK_AHEAD
    open_always = [Interval(now, end)]
    workflow = (
        schedule_intervals(workflow_schedule, zone, now, end) if workflow_schedule else open_always
    )
    out: list[Warning] = []
    for node_id, path in paths.items():
        node = graph.nodes.get(node_id)
        if node is None or not isinstance(node.config, ActionConfig):
            continue
        config = node.config
        windows = workflow
        names = ["workflowSchedule"] if workflow_schedule else []
        if config.needs_tcpa:
            if tcpa_schedule is not None:
                windows = intersect(windows, schedule_intervals(tcpa_schedule, zone, now, end))
                names.append("tcpaSchedule")
            for rule in rules.rules:
                if (
                    rule.jurisdiction == FEDERAL
                    and rule.window is not None
                    and config.channel in rule.channels
                    and rule.in_force(now.date(), end.date())
                ):
                    windows = intersect(windows, schedule_intervals(rule.window, zone, now, end))
                    names.append(f"{rule.id} (federal calling hours)")
        if not windows:
            out.append(
                Warning(
                    "never_in_window",
                    path,
                    f"this step can never run: {' and '.join(names)} never open together "
                    f"(read in {timezone}, over the next 14 days)",
                )
            )
        for retry in config.retries:
            warning = _beyond_caps(retry, config, rules, f"{path}.retryPolicy.{retry.disposition}")
            if warning is not None:
                out.append(warning)
    return out


def _beyond_caps(
    retry: RetryRule, config: ActionConfig, rules: RuleSet, path: str
) -> Warning | None:
    if retry.delay_secs <= 0:
        return None
    for rule in sorted(rules.rules, key=lambda r: (r.cap.max_attempts if r.cap else 0, r.id)):
        cap = rule.cap
        if cap is None or config.channel not in rule.channels:
            continue
        fits = int(cap.window.total_seconds() // retry.delay_secs)
        attempts = 1 + min(retry.max_retries, fits)
        if attempts > cap.max_attempts:
            hours = cap.window.total_seconds() / 3600
            return Warning(
                "retries_beyond_caps",
                path,
                f"up to {attempts} attempts within {hours:g} h, but {rule.jurisdiction} allows "
                f"{cap.max_attempts} ({rule.id}): for its contacts the extra retries wait for "
                "the cap",
            )
    return None

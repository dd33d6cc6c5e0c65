"""Warnings about a definition that is valid but will not do what it seems to say: answered
by the validate endpoints beside the problems (``docs/workflows.md``, "Validating").

* ``never_in_window``: a step whose schedules never open together: the workflow's
  ``workflowSchedule``, and for a step that ``needsTCPACompliance`` its ``tcpaSchedule`` and the
  federal calling hours, all read in the workflow's time zone, over the next 14 days. (A
  contact's own zone and state rules can only close it further.)
* ``retries_beyond_caps``: a retry policy that would make more attempts within a frequency
  cap's rolling window than the cap allows (Florida: 3 calls in 24 hours): the extra retries
  wait for the cap, later than their delay says.
* ``waits_for_cap``: the waits written between steps (a step's delay, a ``TIME`` node's
  delay, a reply timeout on the ``no_reply`` way) are short enough that some path through the
  definition makes more attempts within a frequency cap's rolling window than the cap allows
  (Maine: 1 call in 8 hours; Florida: 3 in 24). The step that would pass the cap waits for it:
  its real wait is longer than written, up to the cap's window. Every attempt counts, calls
  and texts alike (``docs/compliance.md``, "Frequency caps"); waits that only may be short
  (until a time of day, a reply that can come at once, a skipped step) are read as short. A
  wait *longer* than a cap's window needs no warning: the earlier attempts have left the
  window by then, so the cap never moves the step.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from reachflow.domain.compliance.rules import FEDERAL, FrequencyCap, RuleSet
from reachflow.domain.enums import Channel
from reachflow.domain.graph import (
    NO_REPLY,
    ActionConfig,
    EndConfig,
    Graph,
    Node,
    ReplyConfig,
    RetryRule,
    TimeConfig,
)
from reachflow.domain.schedule import WeekSchedule
from reachflow.domain.windows import Interval, intersect, schedule_intervals

LOOK_AHEAD = timedelta(days=14)
#: Nodes one search for crowded attempts may visit (``waits_for_cap``): a bound on the work a
#: validate request can cause, far above any definition's need (a cap allows few attempts).
SEARCH_BUDGET = 20_000


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
    out.extend(_cap_waits(graph, paths, rules))
    return out


def _path_of(node: Node, paths: Mapping[str, str]) -> str | None:
    """The field path naming ``node``: its own, or (a Feather step's later attempt) its
    step's."""
    path = paths.get(node.id)
    if path is None and isinstance(node.config, ActionConfig) and node.config.step_id:
        path = paths.get(node.config.step_id)
    return path


def _cap_waits(graph: Graph, paths: Mapping[str, str], rules: RuleSet) -> list[Warning]:
    """``waits_for_cap``: one warning per step, for the strictest cap it would pass."""
    capped = sorted(
        ((rule, rule.cap) for rule in rules.rules if rule.cap is not None),
        key=lambda pair: (pair[1].max_attempts, pair[1].window, pair[0].id),
    )
    found: dict[str, Warning] = {}
    for rule, cap in capped:
        for start in graph.nodes.values():
            if not isinstance(start.config, ActionConfig):
                continue
            for node, attempts, after in _crowded(graph, start.id, cap, rule.channels):
                path = _path_of(node, paths)
                if path is None or path in found:
                    continue
                hours = cap.window.total_seconds() / 3600
                source = _path_of(start, paths) or start.id
                found[path] = Warning(
                    "waits_for_cap",
                    path,
                    f"this step can be attempt {attempts} within {hours:g} h (the waits written "
                    f"since {source} add up to {after / 3600:g} h), but {rule.jurisdiction} "
                    f"allows {cap.max_attempts} ({rule.id}): for its contacts it waits for the "
                    "cap, longer than written",
                )
    return list(found.values())


def _crowded(
    graph: Graph, start: str, cap: FrequencyCap, channels: frozenset[Channel]
) -> Iterator[tuple[Node, int, float]]:
    """The ACTION nodes on ``channels`` that some path from ``start`` (dispatched) reaches as
    attempt ``max_attempts + 1`` or later while the shortest waits written along it stay
    below the cap's window: ``(node, attempt number, seconds since start)``."""
    window = cap.window.total_seconds()
    # (node id, seconds since start, attempts so far, the node was skipped, nodes walked)
    stack: list[tuple[str, float, int, bool, int]] = [(start, 0.0, 1, False, 0)]
    seen: set[tuple[str, float, int, bool]] = set()
    budget = SEARCH_BUDGET
    while stack and budget > 0:
        node_id, elapsed, attempts, skipped, depth = stack.pop()
        budget -= 1
        node = graph.nodes[node_id]
        for edge in graph.outgoing(node_id):
            target = graph.nodes.get(edge.target)
            if target is None or isinstance(target.config, EndConfig):
                continue
            at = elapsed + (0 if skipped else _edge_wait(node, edge.label))
            config = target.config
            nexts: list[tuple[float, int, bool]] = []
            if isinstance(config, ActionConfig):
                dispatched_at = at + config.delay_secs
                if dispatched_at < window:
                    if attempts + 1 > cap.max_attempts and config.channel in channels:
                        yield target, attempts + 1, dispatched_at
                    else:
                        nexts.append((dispatched_at, attempts + 1, False))
                if config.guard is not None:  # skipped: no attempt, its delay not waited
                    nexts.append((at, attempts, True))
            elif isinstance(config, TimeConfig):
                nexts.append((at + (config.delay_secs or 0), attempts, False))
            else:
                nexts.append((at, attempts, False))
            for when, count, skip in nexts:
                key = (target.id, when, count, skip)
                if when < window and depth < len(graph.nodes) * 4 and key not in seen:
                    seen.add(key)
                    stack.append((target.id, when, count, skip, depth + 1))


def _edge_wait(node: Node, label: str | None) -> float:
    """The shortest time between entering ``node``'s work and leaving it by an edge with
    ``label``: a reply wait's timeout on the ``no_reply`` edge, nothing otherwise (a reply,
    or an agent's report, can come at once)."""
    config = node.config
    wait = (
        config.reply_wait
        if isinstance(config, ActionConfig)
        else config.wait
        if isinstance(config, ReplyConfig)
        else None
    )
    if wait is not None and label is not None and label.upper() == NO_REPLY.upper():
        return float(wait.timeout_secs)
    return 0.0


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

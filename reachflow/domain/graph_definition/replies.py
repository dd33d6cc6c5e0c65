"""The graph form of waiting for a reply and of retry policies (``docs/workflows.md``).

* ``WAIT_FOR_REPLY`` node, or ``wait_for_reply`` on an SMS node's config:
  ``{timeout_minutes | timeout_hours | timeout_days: n, branches: [{label, keywords | regex}]}``.
  It emits ``replied``, ``no_reply``, ``opted_out`` and each branch's ``label``.
* ``retry_policy`` on a VOICE_CALL or SMS node's config:
  ``{DISPOSITION: {delay_minutes | delay_hours | delay_days: n, max_retries, use_callback_at}}``.

Like every parser here, these check structure only and report coded problems.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reachflow.domain.enums import Disposition
from reachflow.domain.graph import (
    ReplyBranch,
    ReplyConfig,
    ReplyWait,
    RetryRule,
)
from reachflow.domain.graph_definition.fields import _is_number, _unknown_keys
from reachflow.domain.graph_definition.problems import GraphProblems, ProblemCode
from reachflow.domain.replies import MAX_BRANCHES, BranchForm, parse_branch

TIMEOUT_KEYS: Mapping[str, int] = {
    "timeout_minutes": 60,
    "timeout_hours": 3600,
    "timeout_days": 86400,
}
WAIT_FIELDS = frozenset({*TIMEOUT_KEYS, "branches"})
BRANCH_FIELDS = frozenset({"label", "keywords", "regex"})
RETRY_DELAY_KEYS: Mapping[str, int] = {
    "delay_minutes": 60,
    "delay_hours": 3600,
    "delay_days": 86400,
}
RETRY_FIELDS = frozenset({*RETRY_DELAY_KEYS, "max_retries", "use_callback_at"})
MIN_TIMEOUT_SECS = 60
MAX_TIMEOUT_SECS = 30 * 86400
MAX_RETRIES = 10
MAX_RETRY_DELAY_SECS = 30 * 86400
GRAPH_BRANCH = BranchForm(
    name_key="label",
    tests=("keywords", "regex"),
    name_rule="must be a letter, then letters, digits or _ (at most 40)",
)


def parse_wait(raw: object, path: str, problems: GraphProblems) -> ReplyWait | None:
    """A ``wait_for_reply`` object; None (with problems) when it is unusable. A missing
    timeout is a draft's gap: ``timeout_secs`` 0, refused at activation."""
    if not isinstance(raw, Mapping):
        problems.add(ProblemCode.INVALID, path, "must be an object {timeout_hours, branches}")
        return None
    _unknown_keys(raw, WAIT_FIELDS, path, problems)
    forms = [k for k in TIMEOUT_KEYS if k in raw]
    timeout = 0
    if len(forms) > 1:
        problems.add(
            ProblemCode.INVALID, path, f"give one of {', '.join(TIMEOUT_KEYS)}; got {forms}"
        )
    elif forms:
        timeout = _seconds(
            raw[forms[0]],
            TIMEOUT_KEYS[forms[0]],
            f"{path}.{forms[0]}",
            problems,
            low=MIN_TIMEOUT_SECS,
            high=MAX_TIMEOUT_SECS,
        )
    branches_raw = raw.get("branches", [])
    if not isinstance(branches_raw, list) or len(branches_raw) > MAX_BRANCHES:
        problems.add(
            ProblemCode.INVALID, f"{path}.branches", f"must be a list of at most {MAX_BRANCHES}"
        )
        branches_raw = []
    branches: list[ReplyBranch] = []
    seen: set[str] = set()
    for i, item in enumerate(branches_raw):
        branch = _parse_branch(item, f"{path}.branches[{i}]", problems)
        if branch is None:
            continue
        if branch.label.upper() in seen:
            problems.add(
                ProblemCode.INVALID, f"{path}.branches[{i}].label", f"duplicate {branch.label!r}"
            )
        seen.add(branch.label.upper())
        branches.append(branch)
    return ReplyWait(timeout_secs=timeout, branches=tuple(branches))


def _parse_branch(item: object, path: str, problems: GraphProblems) -> ReplyBranch | None:
    """A branch, or None after its first problem (the graph form reports one per branch)."""
    if not isinstance(item, Mapping):
        problems.add(ProblemCode.INVALID, path, "must be an object {label, keywords | regex}")
        return None
    _unknown_keys(item, BRANCH_FIELDS, path, problems)
    parsed = parse_branch(item, 0, path, GRAPH_BRANCH)
    if parsed.problems:
        problems.add(ProblemCode.INVALID, *parsed.problems[0])
        return None
    return parsed.branch()


def parse_reply_node(config: Mapping[str, Any], path: str, problems: GraphProblems) -> ReplyConfig:
    """A ``WAIT_FOR_REPLY`` node's config is the wait itself."""
    wait = parse_wait(config, path, problems)
    return ReplyConfig(wait=wait or ReplyWait(timeout_secs=0))


def parse_retry_policy(raw: object, path: str, problems: GraphProblems) -> tuple[RetryRule, ...]:
    if not isinstance(raw, Mapping):
        problems.add(
            ProblemCode.INVALID,
            path,
            "must map dispositions to {delay_hours, max_retries, use_callback_at}",
        )
        return ()
    rules: list[RetryRule] = []
    for disposition, rule in raw.items():
        where = f"{path}.{disposition}"
        if disposition not in Disposition.__members__:
            problems.add(ProblemCode.INVALID, where, f"unknown disposition {disposition!r}")
            continue
        if not isinstance(rule, Mapping):
            problems.add(ProblemCode.INVALID, where, "must be an object")
            continue
        _unknown_keys(rule, RETRY_FIELDS, where, problems)
        use_callback = rule.get("use_callback_at", False)
        if not isinstance(use_callback, bool):
            problems.add(ProblemCode.INVALID, f"{where}.use_callback_at", "must be a boolean")
            use_callback = False
        forms = [k for k in RETRY_DELAY_KEYS if k in rule]
        delay = 0
        if len(forms) > 1:
            problems.add(ProblemCode.INVALID, where, f"give one of {', '.join(RETRY_DELAY_KEYS)}")
        elif forms:
            delay = _seconds(
                rule[forms[0]],
                RETRY_DELAY_KEYS[forms[0]],
                f"{where}.{forms[0]}",
                problems,
                low=0,
                high=MAX_RETRY_DELAY_SECS,
            )
        elif not use_callback:
            problems.add(ProblemCode.REQUIRED, where, f"needs one of {', '.join(RETRY_DELAY_KEYS)}")
        retries = rule.get("max_retries", 1)
        if (
            isinstance(retries, bool)
            or not isinstance(retries, int)
            or not 1 <= retries <= MAX_RETRIES
        ):
            problems.add(
                ProblemCode.INVALID,
                f"{where}.max_retries",
                f"must be a whole number from 1 to {MAX_RETRIES}",
            )
            retries = 1
        rules.append(RetryRule(str(disposition), delay, retries, use_callback))
    return tuple(rules)


def _seconds(
    value: object, unit: int, path: str, problems: GraphProblems, *, low: int, high: int
) -> int:
    if not isinstance(value, (int, float)) or not _is_number(value) or value < 0:
        problems.add(ProblemCode.INVALID, path, "must be a number >= 0")
        return 0
    if value > high / unit:
        problems.add(ProblemCode.INVALID, path, f"must be at most {high // 86400} days")
        return 0
    secs = round(value * unit)
    if secs < low:
        problems.add(ProblemCode.INVALID, path, f"must be at least {low} seconds")
        return 0
    return secs

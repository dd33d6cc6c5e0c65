"""Feather's linear definition: validation, normalisation and compilation to a ``Graph``.

Our choices where Feather's docs are silent (documented in docs/workflows.md):

* ``conditions``: a list of ``{field, operator, value}`` joined by AND, or
  ``{logic: AND|OR, conditions: [...]}``. They are checked when the execution reaches the step;
  if they do not hold, the step is SKIPPED (its delay is not waited) and the next step follows.
* ``count`` (default 1): how many times the step is attempted; every attempt waits the step's
  ``delayInSecs`` first, and a ``finishOn`` outcome on any attempt ends the execution.
* ``isInfinite`` (default false): after the last step the execution starts again at the first
  step instead of completing; it ends only on ``finishOn`` or cancellation. It needs at least
  one step with a positive delay, so it never spins.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from reachflow.domain.conditions import parse_condition_set
from reachflow.domain.enums import Channel, Disposition
from reachflow.domain.errors import ProblemCollector
from reachflow.domain.graph import (
    NO_REPLY,
    REPLIED,
    SKIPPED,
    ActionConfig,
    Edge,
    EndConfig,
    Graph,
    Node,
    NodeKind,
    ReplyBranch,
    ReplyWait,
    RetryRule,
)
from reachflow.domain.replies import MAX_BRANCHES, BranchForm, parse_branch
from reachflow.domain.templates import TemplateSyntaxError, placeholder_names

STEP_FIELDS = frozenset(
    {
        "id",
        "type",
        "order",
        "delayInSecs",
        "agentId",
        "leaveVoicemail",
        "finishOn",
        "needsTCPACompliance",
        "conditions",
        "initialMessage",
        "count",
        "voicemailMessage",
        "waitForReply",
        "retryPolicy",
    }
)
DEFINITION_FIELDS = frozenset({"steps", "isInfinite"})
MAX_COUNT = 20
END_FINISH = "end:finish"
END_COMPLETE = "end:complete"


def is_linear(raw: object) -> bool:
    return isinstance(raw, Mapping) and "steps" in raw


def normalize_linear(
    raw: object,
    agents: Mapping[str, Channel],
    new_ids: Iterator[str],
    path: str = "definition",
) -> dict[str, Any]:
    """Validate a linear definition and return it with every default filled in.

    ``agents`` maps the organization's agent ids to their channels; ``new_ids`` supplies ids
    for steps that come without one. Raises ``ValidationFailed`` naming every bad field.
    """
    problems = ProblemCollector()
    if not isinstance(raw, Mapping):
        problems.add(path, "must be an object with 'steps'")
        problems.raise_if_any()
        raise AssertionError("unreachable")
    for key in raw:
        if key not in DEFINITION_FIELDS:
            problems.add(f"{path}.{key}", "unknown field")
    infinite = raw.get("isInfinite", False)
    if not isinstance(infinite, bool):
        problems.add(f"{path}.isInfinite", "must be a boolean")
        infinite = False
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        problems.add(f"{path}.steps", "must be a non-empty list of steps")
        problems.raise_if_any()
    assert isinstance(steps_raw, list)
    steps = [
        _normalize_step(item, agents, new_ids, f"{path}.steps[{i}]", problems)
        for i, item in enumerate(steps_raw)
    ]
    seen_orders: dict[int, int] = {}
    seen_ids: dict[str, int] = {}
    for i, step in enumerate(steps):
        order = step.get("order")
        if isinstance(order, int):
            if order in seen_orders:
                problems.add(
                    f"{path}.steps[{i}].order",
                    f"duplicate order {order} (also used by steps[{seen_orders[order]}])",
                )
            seen_orders.setdefault(order, i)
        sid = step.get("id")
        if isinstance(sid, str):
            if sid in seen_ids:
                problems.add(f"{path}.steps[{i}].id", f"duplicate step id {sid!r}")
            seen_ids.setdefault(sid, i)
    if infinite and not any(s.get("delayInSecs", 0) > 0 for s in steps):
        problems.add(f"{path}.isInfinite", "an infinite workflow needs a step with delayInSecs > 0")
    _check_reply_targets(steps, path, problems)
    problems.raise_if_any()
    steps.sort(key=lambda s: s["order"])
    return {"steps": steps, "isInfinite": infinite}


def _normalize_step(
    item: object,
    agents: Mapping[str, Channel],
    new_ids: Iterator[str],
    path: str,
    problems: ProblemCollector,
) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        problems.add(path, "must be an object")
        return {}
    for key in item:
        if key not in STEP_FIELDS:
            problems.add(f"{path}.{key}", "unknown field")
    out: dict[str, Any] = {}
    sid = item.get("id")
    if sid is None:
        sid = next(new_ids)
    elif not isinstance(sid, str) or not sid:
        problems.add(f"{path}.id", "must be a non-empty string")
    out["id"] = sid
    try:
        channel = Channel(str(item.get("type")))
    except ValueError:
        problems.add(f"{path}.type", "must be CALL or TEXT")
        channel = Channel.CALL
    out["type"] = channel.value
    out["order"] = _int_field(item, "order", path, problems, minimum=1, required=True)
    out["delayInSecs"] = _int_field(item, "delayInSecs", path, problems, minimum=0, default=0)
    agent_id = item.get("agentId")
    if not isinstance(agent_id, str) or not agent_id:
        problems.add(f"{path}.agentId", "is required")
    elif agent_id not in agents:
        problems.add(f"{path}.agentId", f"unknown agent {agent_id!r}")
    elif agents[agent_id] is not channel:
        problems.add(
            f"{path}.agentId",
            f"agent {agent_id!r} is a {agents[agent_id].value} agent; a {channel.value} step "
            f"needs a {channel.value} agent",
        )
    out["agentId"] = agent_id
    for flag, default in (("leaveVoicemail", False), ("needsTCPACompliance", True)):
        value = item.get(flag, default)
        if not isinstance(value, bool):
            problems.add(f"{path}.{flag}", "must be a boolean")
            value = default
        out[flag] = value
    finish_on = item.get("finishOn", [])
    if not isinstance(finish_on, list):
        problems.add(f"{path}.finishOn", "must be a list of dispositions")
        finish_on = []
    for j, value in enumerate(finish_on):
        if not isinstance(value, str) or value not in Disposition.__members__:
            problems.add(
                f"{path}.finishOn[{j}]",
                f"unknown disposition {value!r}; expected one of {', '.join(Disposition)}",
            )
    out["finishOn"] = [v for v in finish_on if isinstance(v, str) and v in Disposition.__members__]
    conditions = item.get("conditions", [])
    parse_condition_set(conditions, f"{path}.conditions", problems)
    out["conditions"] = conditions if conditions is not None else []
    for text_field in ("initialMessage", "voicemailMessage"):
        message = item.get(text_field)
        if message is None:
            continue
        if not isinstance(message, str):
            problems.add(f"{path}.{text_field}", "must be a string")
            continue
        try:
            placeholder_names(message)
        except TemplateSyntaxError as exc:
            problems.add(f"{path}.{text_field}", str(exc))
        out[text_field] = message
    out["count"] = _int_field(item, "count", path, problems, minimum=1, default=1)
    if isinstance(out["count"], int) and out["count"] > MAX_COUNT:
        problems.add(f"{path}.count", f"must be at most {MAX_COUNT}")
    if "waitForReply" in item:
        if channel is not Channel.TEXT:
            problems.add(f"{path}.waitForReply", "only a TEXT step waits for a reply")
        out["waitForReply"] = _normalize_wait(
            item["waitForReply"], f"{path}.waitForReply", problems
        )
    if "retryPolicy" in item:
        out["retryPolicy"] = _normalize_retry_policy(
            item["retryPolicy"], f"{path}.retryPolicy", problems
        )
    return out


def _int_field(
    item: Mapping[str, Any],
    name: str,
    path: str,
    problems: ProblemCollector,
    *,
    minimum: int,
    default: int | None = None,
    required: bool = False,
) -> int:
    if name not in item:
        if required:
            problems.add(f"{path}.{name}", "is required")
        return default if default is not None else minimum
    value = item[name]
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(f"{path}.{name}", "must be an integer")
        return default if default is not None else minimum
    if value < minimum:
        problems.add(f"{path}.{name}", f"must be >= {minimum}")
    return value


# -- waitForReply and retryPolicy ----------------------------------------------------------

WAIT_FIELDS = frozenset({"timeoutSecs", "branches", "onReply", "onNoReply"})
BRANCH_FIELDS = frozenset({"name", "keywords", "regex", "optOut", "then"})
#: Where a reply outcome leads: end the execution, the step's next attempt or step, or a step.
FINISH, NEXT_STEP = "finish", "next"
MIN_REPLY_TIMEOUT = 60
MAX_REPLY_TIMEOUT = 30 * 86400
MAX_RETRIES = 10
MAX_RETRY_DELAY = 30 * 86400
RETRY_FIELDS = frozenset({"delaySecs", "maxRetries", "useCallbackAt"})
FEATHER_BRANCH = BranchForm(
    name_key="name",
    tests=("keywords", "regex", "optOut"),
    name_rule="must be a letter, then letters, digits or _ (max 40)",
    reserved_hint=": pick another name",
    default_names=True,
)


def _normalize_wait(raw: object, path: str, problems: ProblemCollector) -> dict[str, Any]:
    """``{timeoutSecs, branches: [{name, keywords | regex | optOut, then}], onReply,
    onNoReply}``, every default filled in."""
    if not isinstance(raw, Mapping):
        problems.add(path, "must be an object {timeoutSecs, branches, onReply, onNoReply}")
        return {}
    for key in raw:
        if key not in WAIT_FIELDS:
            problems.add(f"{path}.{key}", f"unknown field; expected one of {sorted(WAIT_FIELDS)}")
    timeout = _int_field(
        raw, "timeoutSecs", path, problems, minimum=MIN_REPLY_TIMEOUT, required=True
    )
    if timeout > MAX_REPLY_TIMEOUT:
        problems.add(f"{path}.timeoutSecs", f"must be at most {MAX_REPLY_TIMEOUT} (30 days)")
    out: dict[str, Any] = {"timeoutSecs": timeout}
    for key, default in (("onReply", FINISH), ("onNoReply", NEXT_STEP)):
        target = raw.get(key, default)
        if not isinstance(target, str) or not target:
            problems.add(f"{path}.{key}", "must be finish, next or a step id")
            target = default
        out[key] = target
    branches_raw = raw.get("branches", [])
    if not isinstance(branches_raw, list):
        problems.add(f"{path}.branches", "must be a list of branches")
        branches_raw = []
    if len(branches_raw) > MAX_BRANCHES:
        problems.add(f"{path}.branches", f"at most {MAX_BRANCHES} branches")
    branches = []
    seen: set[str] = set()
    for i, item in enumerate(branches_raw):
        branch = _normalize_branch(item, i, f"{path}.branches[{i}]", problems)
        name = str(branch.get("name", ""))
        if name.upper() in seen:
            problems.add(f"{path}.branches[{i}].name", f"duplicate branch {name!r}")
        seen.add(name.upper())
        branches.append(branch)
    out["branches"] = branches
    return out


def _normalize_branch(
    item: object, index: int, path: str, problems: ProblemCollector
) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        problems.add(path, "must be an object {name, keywords | regex | optOut, then}")
        return {}
    for key in item:
        if key not in BRANCH_FIELDS:
            problems.add(f"{path}.{key}", f"unknown field; expected one of {sorted(BRANCH_FIELDS)}")
    parsed = parse_branch(item, index, path, FEATHER_BRANCH)
    for where, message in parsed.problems:
        problems.add(where, message)
    out: dict[str, Any] = {"optOut": True} if parsed.opt_out else {}
    out["name"] = parsed.name
    if parsed.keywords is not None:
        out["keywords"] = list(parsed.keywords)
    if parsed.pattern is not None:
        out["regex"] = parsed.pattern
    then = item.get("then", FINISH)
    if not isinstance(then, str) or not then:
        problems.add(f"{path}.then", "must be finish, next or a step id")
        then = FINISH
    out["then"] = then
    return out


def _check_reply_targets(
    steps: list[dict[str, Any]], path: str, problems: ProblemCollector
) -> None:
    """Every ``then``, ``onReply`` and ``onNoReply`` names finish, next or a step of this
    definition."""
    ids = {s.get("id") for s in steps}
    for i, step in enumerate(steps):
        wait = step.get("waitForReply")
        if not wait:
            continue
        where = f"{path}.steps[{i}].waitForReply"
        targets = [(f"{where}.{k}", wait.get(k)) for k in ("onReply", "onNoReply")]
        targets += [
            (f"{where}.branches[{j}].then", b.get("then"))
            for j, b in enumerate(wait.get("branches", []))
        ]
        for field, target in targets:
            if target not in (FINISH, NEXT_STEP, None) and target not in ids:
                problems.add(field, f"unknown step {target!r}; use finish, next or a step id")


def _normalize_retry_policy(
    raw: object, path: str, problems: ProblemCollector
) -> dict[str, dict[str, Any]]:
    """``{DISPOSITION: {delaySecs, maxRetries, useCallbackAt}}``."""
    if not isinstance(raw, Mapping):
        problems.add(path, "must map dispositions to {delaySecs, maxRetries, useCallbackAt}")
        return {}
    out: dict[str, dict[str, Any]] = {}
    for disposition, rule in raw.items():
        where = f"{path}.{disposition}"
        if disposition not in Disposition.__members__:
            problems.add(
                where,
                f"unknown disposition {disposition!r}; expected one of {', '.join(Disposition)}",
            )
            continue
        if not isinstance(rule, Mapping):
            problems.add(where, "must be an object {delaySecs, maxRetries, useCallbackAt}")
            continue
        for key in rule:
            if key not in RETRY_FIELDS:
                problems.add(
                    f"{where}.{key}", f"unknown field; expected one of {sorted(RETRY_FIELDS)}"
                )
        use_callback = rule.get("useCallbackAt", False)
        if not isinstance(use_callback, bool):
            problems.add(f"{where}.useCallbackAt", "must be a boolean")
            use_callback = False
        delay = _int_field(rule, "delaySecs", where, problems, minimum=0, required=not use_callback)
        if delay > MAX_RETRY_DELAY:
            problems.add(f"{where}.delaySecs", f"must be at most {MAX_RETRY_DELAY} (30 days)")
        retries = _int_field(rule, "maxRetries", where, problems, minimum=1, default=1)
        if retries > MAX_RETRIES:
            problems.add(f"{where}.maxRetries", f"must be at most {MAX_RETRIES}")
        out[disposition] = {
            "delaySecs": delay,
            "maxRetries": retries,
            "useCallbackAt": use_callback,
        }
    return out


def reply_wait_of_step(step: Mapping[str, Any]) -> ReplyWait | None:
    wait = step.get("waitForReply")
    if not wait:
        return None
    return ReplyWait(
        timeout_secs=int(wait["timeoutSecs"]),
        branches=tuple(
            ReplyBranch(
                label=str(b["name"]),
                keywords=tuple(b.get("keywords", ())),
                pattern=b.get("regex"),
            )
            for b in wait.get("branches", [])
            if not b.get("optOut")
        ),
    )


def retries_of_step(step: Mapping[str, Any]) -> tuple[RetryRule, ...]:
    return tuple(
        RetryRule(
            disposition=disposition,
            delay_secs=int(rule.get("delaySecs", 0)),
            max_retries=int(rule.get("maxRetries", 1)),
            use_callback_at=bool(rule.get("useCallbackAt", False)),
        )
        for disposition, rule in (step.get("retryPolicy") or {}).items()
    )


def attempt_node_id(step_id: str, attempt: int) -> str:
    return step_id if attempt == 1 else f"{step_id}#{attempt}"


def compile_linear(definition: Mapping[str, Any]) -> Graph:
    """Compile a normalised linear definition: one ACTION node per step attempt, in order.

    Each node's edges: one per ``finishOn`` disposition to ``end:finish``, then the default to
    the next attempt, the next step, the first step (``isInfinite``) or ``end:complete``.
    """
    steps = sorted(definition["steps"], key=lambda s: s["order"])
    chains: list[list[Node]] = []
    for step in steps:
        guard_problems = ProblemCollector()
        guard = parse_condition_set(step.get("conditions"), "conditions", guard_problems)
        chains.append(
            [
                Node(
                    id=attempt_node_id(step["id"], attempt),
                    kind=NodeKind.ACTION,
                    label=f"step {step['order']}",
                    config=ActionConfig(
                        channel=Channel(step["type"]),
                        agent_id=step["agentId"],
                        leave_voicemail=step.get("leaveVoicemail", False),
                        message=step.get("initialMessage") or step.get("voicemailMessage"),
                        needs_tcpa=step.get("needsTCPACompliance", True),
                        delay_secs=step.get("delayInSecs", 0),
                        guard=guard if attempt == 1 else None,
                        step_id=step["id"],
                        step_order=step["order"],
                        finish_on=tuple(Disposition(d) for d in step.get("finishOn", [])),
                        reply_wait=reply_wait_of_step(step),
                        retries=retries_of_step(step),
                    ),
                )
                for attempt in range(1, step.get("count", 1) + 1)
            ]
        )
    after_last = chains[0][0].id if definition.get("isInfinite") else END_COMPLETE
    nodes: dict[str, Node] = {n.id: n for chain in chains for n in chain}
    nodes[END_FINISH] = Node(END_FINISH, NodeKind.END, EndConfig(), "finishOn")
    nodes[END_COMPLETE] = Node(END_COMPLETE, NodeKind.END, EndConfig(), "end")
    edges: list[Edge] = []
    first_node = {step["id"]: chain[0].id for step, chain in zip(steps, chains, strict=True)}
    for s_index, (step, chain) in enumerate(zip(steps, chains, strict=True)):
        next_step = chains[s_index + 1][0].id if s_index + 1 < len(chains) else after_last
        for a_index, node in enumerate(chain):
            assert isinstance(node.config, ActionConfig)
            if node.config.guard is not None and len(chain) > 1:
                edges.append(Edge(node.id, next_step, SKIPPED))
            edges.extend(Edge(node.id, END_FINISH, d.value) for d in node.config.finish_on)
            following = chain[a_index + 1].id if a_index + 1 < len(chain) else next_step
            wait = step.get("waitForReply")
            if wait:

                def target(name: str, following: str = following) -> str:
                    if name == FINISH:
                        return END_FINISH
                    if name == NEXT_STEP:
                        return following
                    return first_node[name]

                edges.extend(
                    Edge(node.id, target(b["then"]), b["name"]) for b in wait.get("branches", [])
                )
                edges.append(Edge(node.id, target(wait["onReply"]), REPLIED))
                edges.append(Edge(node.id, target(wait["onNoReply"]), NO_REPLY))
            edges.append(Edge(node.id, following, None))
    return Graph(entry=chains[0][0].id, nodes=nodes, edges=tuple(edges))

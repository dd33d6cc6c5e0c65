"""Per-node ``config`` parsing: one parser per node type (and per APPLICATION action).

Each parser checks a node's ``config`` object and returns the ``NodeConfig`` the engine runs.
Like the rest of parsing it checks structure only: a draft may leave out what activation
requires (an agent, an SMS message, a wait, a test).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from reachflow.domain.conditions import KNOWN_FIELDS_HINT, field_is_known, parse_condition_set
from reachflow.domain.enums import Channel
from reachflow.domain.errors import FieldError, ProblemCollector
from reachflow.domain.graph import (
    ActionConfig,
    ApplicationConfig,
    ConditionalConfig,
    EndConfig,
    EndOutcome,
    NodeConfig,
    RetryRule,
    TimeConfig,
)
from reachflow.domain.graph_definition.fields import (
    _bool,
    _is_number,
    _names,
    _opt_str,
    _template,
    _unknown_keys,
)
from reachflow.domain.graph_definition.model import BRANCH_DEFAULT, NodeType
from reachflow.domain.graph_definition.problems import GraphProblems, ProblemCode
from reachflow.domain.graph_definition.replies import (
    parse_reply_node,
    parse_retry_policy,
    parse_wait,
)

VOICE_CALL_FIELDS = frozenset(
    {
        "agent_id",
        "from_phone_number",
        "leave_voicemail",
        "voicemail_message",
        "needs_tcpa_compliance",
        "retry_policy",
    }
)
SMS_FIELDS = frozenset(
    {"agent_id", "message", "needs_tcpa_compliance", "wait_for_reply", "retry_policy"}
)
DELAY_KEYS: Mapping[str, int] = {"delay_minutes": 60, "delay_hours": 3600, "delay_days": 86400}
DURATION_UNITS: Mapping[str, int] = {"minutes": 60, "hours": 3600, "days": 86400}
TIME_FORMS = (*DELAY_KEYS, "duration", "until_time", "until_schedule_opens")
TIME_FIELDS = frozenset({*TIME_FORMS, "unit"})
CONDITIONAL_FIELDS = frozenset({"conditions", "condition_field", "branches"})
MAX_DELAY_SECS = 366 * 86400
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SUPPRESS_CHANNELS = ("ALL", "CALL", "TEXT")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLOCK = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")


def _parse_voice_call(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> ActionConfig:
    """``agent_id`` may be missing in a draft (it becomes ``""``, refused at activation).

    ``voicemail_message`` becomes the dispatch message: what the agent leaves on voicemail.
    """
    _unknown_keys(config, VOICE_CALL_FIELDS, path, problems)
    return ActionConfig(
        channel=Channel.CALL,
        agent_id=_opt_str(config, "agent_id", path, problems) or "",
        leave_voicemail=_bool(config, "leave_voicemail", False, path, problems),
        message=_template(config, "voicemail_message", path, problems),
        needs_tcpa=_bool(config, "needs_tcpa_compliance", True, path, problems),
        from_phone_number=_opt_str(config, "from_phone_number", path, problems),
        retries=_retries(config, path, problems),
    )


def _retries(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> tuple[RetryRule, ...]:
    if "retry_policy" not in config:
        return ()
    return parse_retry_policy(config["retry_policy"], f"{path}.retry_policy", problems)


def _parse_sms(config: Mapping[str, Any], path: str, problems: GraphProblems) -> ActionConfig:
    """``agent_id`` and ``message`` may be missing in a draft; activation requires both."""
    _unknown_keys(config, SMS_FIELDS, path, problems)
    return ActionConfig(
        channel=Channel.TEXT,
        agent_id=_opt_str(config, "agent_id", path, problems) or "",
        message=_template(config, "message", path, problems),
        needs_tcpa=_bool(config, "needs_tcpa_compliance", True, path, problems),
        reply_wait=parse_wait(config["wait_for_reply"], f"{path}.wait_for_reply", problems)
        if "wait_for_reply" in config
        else None,
        retries=_retries(config, path, problems),
    )


def _parse_time(config: Mapping[str, Any], path: str, problems: GraphProblems) -> TimeConfig:
    """Exactly one of ``delay_minutes|delay_hours|delay_days`` (a positive number),
    ``{duration, unit}``, ``until_time: "HH:MM"`` (local, workflow zone) or
    ``until_schedule_opens: true``. None at all is a draft (refused at activation).
    """
    _unknown_keys(config, TIME_FIELDS, path, problems)
    forms = [key for key in TIME_FORMS if key in config]
    if "unit" in config and "duration" not in config:
        problems.add(ProblemCode.INVALID, f"{path}.duration", "is required with 'unit'")
    if len(forms) > 1:
        problems.add(
            ProblemCode.INVALID,
            path,
            f"give exactly one of {', '.join(TIME_FORMS)}; got {', '.join(forms)}",
        )
        return TimeConfig()
    if not forms:
        return TimeConfig()
    form = forms[0]
    if form in DELAY_KEYS:
        secs = _delay_secs(config[form], DELAY_KEYS[form], f"{path}.{form}", problems)
        return TimeConfig(delay_secs=secs)
    if form == "duration":
        unit = config.get("unit")
        if not isinstance(unit, str) or unit not in DURATION_UNITS:
            problems.add(ProblemCode.INVALID, f"{path}.unit", "must be minutes, hours or days")
            return TimeConfig()
        secs = _delay_secs(config["duration"], DURATION_UNITS[unit], f"{path}.duration", problems)
        return TimeConfig(delay_secs=secs)
    if form == "until_time":
        return TimeConfig(until_minute_of_day=_minute_of_day(config[form], path, problems))
    if config[form] is not True:
        problems.add(ProblemCode.INVALID, f"{path}.{form}", "must be true (or left out)")
    return TimeConfig(until_schedule_opens=True)


def _delay_secs(value: object, unit_secs: int, path: str, problems: GraphProblems) -> int | None:
    if not isinstance(value, (int, float)) or not _is_number(value) or value <= 0:
        problems.add(ProblemCode.INVALID, path, "must be a positive number")
        return None
    if value > MAX_DELAY_SECS / unit_secs:  # compared before multiplying: 1e308 overflows
        problems.add(ProblemCode.INVALID, path, "must be at most 366 days")
        return None
    return max(round(value * unit_secs), 1)


def _minute_of_day(value: object, path: str, problems: GraphProblems) -> int | None:
    match = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        problems.add(ProblemCode.INVALID, f"{path}.until_time", 'must be "HH:MM" (00:00-23:59)')
        return None
    return int(match.group(1)) * 60 + int(match.group(2))


def _parse_conditional(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> ConditionalConfig:
    """Either ``conditions`` (emits true/false) or ``condition_field`` with ``branches``
    (emits the matching branch label, or "default"). Neither is a draft.
    """
    _unknown_keys(config, CONDITIONAL_FIELDS, path, problems)
    branching = "condition_field" in config or "branches" in config
    if branching and "conditions" in config:
        problems.add(
            ProblemCode.INVALID,
            path,
            "give either 'conditions' or 'condition_field' with 'branches', not both",
        )
        return ConditionalConfig()
    if branching:
        return _parse_branches(config, path, problems)
    collector = ProblemCollector()
    conditions = parse_condition_set(config.get("conditions"), f"{path}.conditions", collector)
    problems.absorb(collector, _condition_code)
    return ConditionalConfig(conditions=conditions)


def _condition_code(problem: FieldError) -> ProblemCode:
    # parse_condition_set reports an unknown field at ``...[i].field`` and nothing else there.
    return ProblemCode.UNKNOWN_FIELD if problem.field.endswith(".field") else ProblemCode.INVALID


def _parse_branches(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> ConditionalConfig:
    branch_field = config.get("condition_field")
    if not isinstance(branch_field, str) or not field_is_known(branch_field):
        problems.add(
            ProblemCode.UNKNOWN_FIELD,
            f"{path}.condition_field",
            f"unknown field {branch_field!r}; {KNOWN_FIELDS_HINT}",
        )
        branch_field = None
    branches = config.get("branches")
    if not isinstance(branches, list) or not branches:
        problems.add(ProblemCode.INVALID, f"{path}.branches", "must be a non-empty list")
        return ConditionalConfig(branch_field=branch_field)
    seen: set[str] = set()
    for i, branch in enumerate(branches):
        if not isinstance(branch, str) or not branch.strip():
            problems.add(ProblemCode.INVALID, f"{path}.branches[{i}]", "must be a non-empty string")
        elif branch.upper() == BRANCH_DEFAULT.upper():
            problems.add(ProblemCode.INVALID, f"{path}.branches[{i}]", "'default' is reserved")
        elif branch.upper() in seen:
            problems.add(ProblemCode.INVALID, f"{path}.branches[{i}]", f"duplicate {branch!r}")
        else:
            seen.add(branch.upper())
    labels = tuple(b for b in branches if isinstance(b, str))
    return ConditionalConfig(branch_field=branch_field, branches=labels)


def _parse_application(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> ApplicationConfig:
    """``action`` picks the shape; the params keep every default filled in."""
    action = config.get("action")
    parser = _ACTION_PARSERS.get(action) if isinstance(action, str) else None
    if parser is None:
        problems.add(
            ProblemCode.INVALID,
            f"{path}.action",
            f"unknown action {action!r}; expected one of {_names(_ACTION_PARSERS)}",
        )
        return ApplicationConfig(action=str(action))
    assert isinstance(action, str)
    return ApplicationConfig(action=action, params=parser(config, path, problems))


def _parse_set_variable(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> dict[str, Any]:
    _unknown_keys(config, frozenset({"action", "key", "value"}), path, problems)
    key = config.get("key")
    if not isinstance(key, str) or not _IDENTIFIER.fullmatch(key):
        problems.add(ProblemCode.INVALID, f"{path}.key", "must be a name: a letter or _ first")
    if "value" not in config:
        problems.add(ProblemCode.INVALID, f"{path}.value", "is required")
    value = config.get("value")
    if value is not None and not isinstance(value, (str, bool)) and not _is_number(value):
        problems.add(ProblemCode.INVALID, f"{path}.value", "must be a string, number or boolean")
    return {"key": key, "value": value}


def _parse_merge_metadata(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> dict[str, Any]:
    _unknown_keys(config, frozenset({"action", "metadata"}), path, problems)
    metadata = config.get("metadata")
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        problems.add(ProblemCode.INVALID, f"{path}.metadata", "must be an object")
        return {"metadata": {}}
    return {"metadata": copy.deepcopy(dict(metadata))}


def _parse_suppress(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> dict[str, Any]:
    _unknown_keys(config, frozenset({"action", "channel", "reason"}), path, problems)
    channel = config.get("channel", "ALL")
    if channel not in SUPPRESS_CHANNELS:
        problems.add(ProblemCode.INVALID, f"{path}.channel", "must be ALL, CALL or TEXT")
    params: dict[str, Any] = {"channel": channel}
    reason = _opt_str(config, "reason", path, problems)
    if reason is not None:
        params["reason"] = reason
    return params


def _parse_http(config: Mapping[str, Any], path: str, problems: GraphProblems) -> dict[str, Any]:
    """``url`` (http or https), ``method`` (default POST), ``secret`` (signs the body with
    HMAC), ``body`` (a JSON object)."""
    _unknown_keys(config, frozenset({"action", "url", "method", "secret", "body"}), path, problems)
    url = config.get("url")
    if not isinstance(url, str) or not _is_http_url(url):
        problems.add(ProblemCode.INVALID, f"{path}.url", "must be an http:// or https:// URL")
    method = config.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        problems.add(ProblemCode.INVALID, f"{path}.method", f"must be one of {HTTP_METHODS}")
        method = "POST"
    params: dict[str, Any] = {"url": url, "method": method.upper()}
    secret = _opt_str(config, "secret", path, problems)
    if secret is not None:
        params["secret"] = secret
    body = config.get("body")
    if body is not None and not isinstance(body, Mapping):
        problems.add(ProblemCode.INVALID, f"{path}.body", "must be an object")
    elif body is not None:
        params["body"] = copy.deepcopy(dict(body))
    return params


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _parse_end(outcome: EndOutcome) -> Callable[[Mapping[str, Any], str, GraphProblems], EndConfig]:
    def parse(config: Mapping[str, Any], path: str, problems: GraphProblems) -> EndConfig:
        _unknown_keys(config, frozenset(), path, problems)
        return EndConfig(outcome)

    return parse


_ConfigParser = Callable[[Mapping[str, Any], str, GraphProblems], NodeConfig]
_CONFIG_PARSERS: Mapping[NodeType, _ConfigParser] = {
    NodeType.VOICE_CALL: _parse_voice_call,
    NodeType.SMS: _parse_sms,
    NodeType.TIME: _parse_time,
    NodeType.CONDITIONAL: _parse_conditional,
    NodeType.APPLICATION: _parse_application,
    NodeType.CONVERTED: _parse_end(EndOutcome.CONVERTED),
    NodeType.DROPPED: _parse_end(EndOutcome.DROPPED),
    NodeType.WAIT_FOR_REPLY: parse_reply_node,
}
_ACTION_PARSERS: Mapping[str, Callable[[Mapping[str, Any], str, GraphProblems], dict[str, Any]]] = {
    "set_variable": _parse_set_variable,
    "merge_metadata": _parse_merge_metadata,
    "suppress": _parse_suppress,
    "http": _parse_http,
}

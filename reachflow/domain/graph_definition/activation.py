"""Activation checks (Rule 2): what a running workflow needs beyond a valid structure.

Agents of the right channel, known condition fields and template variables, a way out of
every non-terminal node, every node reachable from the entry, labels a node can emit, no
duplicate edges, and no loop that could spin (one without a TIME, VOICE_CALL or SMS node).
Also the graph walks these checks use: ``reachable_from``, ``spin_cycles``,
``strongly_connected``, and the variable-key helpers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reachflow.domain.conditions import field_is_known, parse_condition_set
from reachflow.domain.enums import Channel
from reachflow.domain.errors import ProblemCollector
from reachflow.domain.graph import (
    ActionConfig,
    ApplicationConfig,
    ConditionalConfig,
    ReplyConfig,
    TimeConfig,
)
from reachflow.domain.graph_definition.configs import TIME_FORMS, _condition_code
from reachflow.domain.graph_definition.fields import _names
from reachflow.domain.graph_definition.model import (
    WAITING_TYPES,
    GraphDefinition,
    GraphNode,
    _label_key,
    node_outputs,
)
from reachflow.domain.graph_definition.parse import (
    check_graph_definition,
    parse_graph_definition,
)
from reachflow.domain.graph_definition.problems import (
    GraphProblem,
    GraphProblems,
    ProblemCode,
    edge_path,
    node_path,
)
from reachflow.domain.templates import BUILTIN_NAMES, placeholder_names


def validate_for_activation(
    definition: Mapping[str, Any] | GraphDefinition,
    *,
    agents: Mapping[str, Channel],
    variable_keys: frozenset[str] | None,
    root: str = "",
) -> list[GraphProblem]:
    """Every problem that keeps the workflow from running; ``[]`` means it may be activated.

    ``agents`` maps the organization's agent ids to their channels. ``variable_keys`` are the
    lead variables templates may use (``None``: do not check templates); keys written by
    ``set_variable`` nodes count as known, and ``{{metadata.x}}`` is always allowed.
    Structural problems (Rule 1) are returned alone: the rest is checked once they are fixed.
    """
    problems = GraphProblems(root)
    if isinstance(definition, GraphDefinition):
        parsed: GraphDefinition | None = definition
    else:
        parsed = parse_graph_definition(definition, problems)
    if parsed is None:
        return problems.items
    if not parsed.nodes:
        problems.add(ProblemCode.EMPTY, "nodes", "an active workflow needs at least one node")
        return problems.items
    for node in parsed.nodes:
        _check_config(node, agents, problems)
        _check_condition_fields(node, parsed.node_ids, problems)
    if variable_keys is not None:
        _check_templates(parsed, variable_keys | set_variable_keys(parsed), problems)
    _check_edges(parsed, problems)
    _check_ways_out(parsed, problems)
    _check_reachable(parsed, problems)
    _check_spins(parsed, problems)
    return problems.items


def condition_warnings(definition: Mapping[str, Any], root: str = "") -> list[GraphProblem]:
    """What a draft may save but activation will refuse in its conditions: an
    ``attempts.<nodeId>`` (in ``conditions`` or ``condition_field``) naming no node of the
    graph. Saves answer these as ``warnings``; a definition that does not parse has none."""
    problems = GraphProblems(root)
    parsed = parse_graph_definition(definition, GraphProblems(root))
    if parsed is None:
        return []
    for node in parsed.nodes:
        _check_condition_fields(node, parsed.node_ids, problems)
    return problems.items


def _check_config(node: GraphNode, agents: Mapping[str, Channel], problems: GraphProblems) -> None:
    """The fields a draft may leave out: an agent, an SMS message, a wait, a test."""
    path = f"{node_path(node.id)}.config"
    config = node.config
    if isinstance(config, ActionConfig):
        _check_agent(config, f"{path}.agent_id", agents, problems)
        if config.channel is Channel.TEXT and config.message is None:
            problems.add(ProblemCode.REQUIRED, f"{path}.message", "an SMS node needs a message")
    elif isinstance(config, TimeConfig) and _waits_for_nothing(config):
        problems.add(
            ProblemCode.REQUIRED,
            path,
            f"a TIME node needs one of {', '.join(TIME_FORMS)}",
        )
    elif isinstance(config, ConditionalConfig) and not _tests_anything(config):
        problems.add(
            ProblemCode.REQUIRED,
            path,
            "a CONDITIONAL node needs 'conditions' or 'condition_field' with 'branches'",
        )
    _check_reply_timeout(config, path, problems)


def _check_reply_timeout(config: object, path: str, problems: GraphProblems) -> None:
    """A wait for a reply needs its timeout (a draft may leave it out)."""
    if isinstance(config, ReplyConfig) and config.wait.timeout_secs <= 0:
        problems.add(ProblemCode.REQUIRED, path, "a WAIT_FOR_REPLY node needs a timeout_hours")
    if (
        isinstance(config, ActionConfig)
        and config.reply_wait is not None
        and config.reply_wait.timeout_secs <= 0
    ):
        problems.add(
            ProblemCode.REQUIRED, f"{path}.wait_for_reply", "a wait for a reply needs a timeout"
        )


def _check_agent(
    config: ActionConfig, path: str, agents: Mapping[str, Channel], problems: GraphProblems
) -> None:
    agent_id = config.agent_id
    if not agent_id:
        problems.add(ProblemCode.REQUIRED, path, "is required")
    elif agent_id not in agents:
        problems.add(ProblemCode.UNKNOWN_AGENT, path, f"unknown agent {agent_id!r}")
    elif agents[agent_id] is not config.channel:
        node_type = "VOICE_CALL" if config.channel is Channel.CALL else "SMS"
        problems.add(
            ProblemCode.WRONG_CHANNEL,
            path,
            f"agent {agent_id!r} is a {agents[agent_id].value} agent; a {node_type} node "
            f"needs a {config.channel.value} agent",
        )


def _waits_for_nothing(config: TimeConfig) -> bool:
    return (
        config.delay_secs is None
        and config.until_minute_of_day is None
        and not config.until_schedule_opens
    )


def _tests_anything(config: ConditionalConfig) -> bool:
    return config.conditions is not None or config.branch_field is not None


def _check_condition_fields(
    node: GraphNode, node_ids: frozenset[str], problems: GraphProblems
) -> None:
    """``attempts.<nodeId>`` must name a node of this graph (the rest is checked by parsing)."""
    config = node.config
    if not isinstance(config, ConditionalConfig):
        return
    path = f"{node_path(node.id)}.config"
    if config.branch_field is not None and not field_is_known(config.branch_field, node_ids):
        problems.add(
            ProblemCode.UNKNOWN_FIELD,
            f"{path}.condition_field",
            f"unknown field {config.branch_field!r}: no such node in this workflow",
        )
    if config.conditions is not None:
        collector = ProblemCollector()
        parse_condition_set(
            node.raw_config.get("conditions"), f"{path}.conditions", collector, node_ids
        )
        problems.absorb(collector, _condition_code)


def set_variable_keys(definition: GraphDefinition) -> frozenset[str]:
    """The variable keys the workflow's ``set_variable`` nodes write."""
    return frozenset(
        str(n.config.params["key"])
        for n in definition.nodes
        if isinstance(n.config, ApplicationConfig) and n.config.action == "set_variable"
    )


def _templates(definition: GraphDefinition) -> Iterable[tuple[str, str]]:
    """``(field path, template)`` of every message: SMS ``message``, ``voicemail_message``."""
    for node in definition.nodes:
        config = node.config
        if isinstance(config, ActionConfig) and config.message is not None:
            key = "message" if config.channel is Channel.TEXT else "voicemail_message"
            yield f"{node_path(node.id)}.config.{key}", config.message


def _variable_name(placeholder: str) -> str | None:
    """The variable a placeholder needs: ``metadata.x`` needs none, ``variables.x`` needs x."""
    root, _, rest = placeholder.partition(".")
    if rest and root == "metadata":
        return None
    if rest and root == "variables":
        return rest
    if placeholder in BUILTIN_NAMES:  # {{lastReply}}
        return None
    return placeholder


def template_variable_keys(definition: Mapping[str, Any] | GraphDefinition) -> frozenset[str]:
    """The lead variables the definition's templates read (``metadata.*`` excluded)."""
    parsed = definition
    if not isinstance(parsed, GraphDefinition):
        parsed = check_graph_definition(parsed)
    names = (
        _variable_name(name) for _, text in _templates(parsed) for name in placeholder_names(text)
    )
    return frozenset(name for name in names if name is not None)


def _check_templates(
    definition: GraphDefinition, known: frozenset[str], problems: GraphProblems
) -> None:
    for path, text in _templates(definition):
        names = (_variable_name(name) for name in placeholder_names(text))
        unknown = sorted({n for n in names if n is not None and n not in known})
        if unknown:
            problems.add(
                ProblemCode.UNKNOWN_VARIABLE,
                path,
                f"unknown variable(s) {', '.join(unknown)}; known: {_names(known)} "
                "(use {{metadata.<key>}} for lead metadata)",
            )


def _check_edges(definition: GraphDefinition, problems: GraphProblems) -> None:
    """Labels the source can emit, a label on every CONDITIONAL edge, no duplicate edges."""
    first: dict[tuple[str, str, str], str] = {}
    nodes = {n.id: n for n in definition.nodes}
    for edge in definition.edges:
        source = nodes[edge.source]
        path = edge_path(edge.id)
        outputs = node_outputs(source)
        if edge.label is None and _needs_labels(source):
            problems.add(
                ProblemCode.MISSING_LABEL,
                f"{path}.label",
                f"edges out of a CONDITIONAL node need a label: one of {_names(outputs)}",
            )
        elif edge.label is not None and _label_key(edge.label) not in map(_label_key, outputs):
            problems.add(
                ProblemCode.BAD_LABEL,
                f"{path}.label",
                f"a {source.node_type.value} node never emits {edge.label!r}; "
                f"expected one of {_names(outputs)}",
            )
        key = (edge.source, edge.target, _label_key(edge.label))
        if key in first:
            problems.add(
                ProblemCode.DUPLICATE_EDGE,
                path,
                f"same from_node_id, to_node_id and label as {edge_path(first[key])}",
            )
        first.setdefault(key, edge.id)


def _needs_labels(node: GraphNode) -> bool:
    """A true/false CONDITIONAL needs a label on every edge. One with ``branches`` may also
    have an unlabelled edge: the default, taken when no branch matches (as ``default`` is)."""
    config = node.config
    return isinstance(config, ConditionalConfig) and config.branch_field is None


def _check_ways_out(definition: GraphDefinition, problems: GraphProblems) -> None:
    sources = {e.source for e in definition.edges}
    for node in definition.nodes:
        if not node.is_terminal and node.id not in sources:
            problems.add(
                ProblemCode.NO_WAY_OUT,
                node_path(node.id),
                f"a {node.node_type.value} node needs an outgoing edge "
                "(only CONVERTED and DROPPED end a workflow)",
            )


def reachable_from(definition: GraphDefinition, start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for edge in definition.outgoing(todo.pop()):
            if edge.target not in seen:
                seen.add(edge.target)
                todo.append(edge.target)
    return seen


def _check_reachable(definition: GraphDefinition, problems: GraphProblems) -> None:
    assert definition.entry is not None
    seen = reachable_from(definition, definition.entry)
    for node in definition.nodes:
        if node.id not in seen:
            problems.add(
                ProblemCode.UNREACHABLE,
                node_path(node.id),
                f"no path leads here from the entry node {definition.entry!r}",
            )


def spin_cycles(definition: GraphDefinition) -> list[tuple[str, ...]]:
    """Groups of CONDITIONAL/APPLICATION nodes that can loop among themselves forever.

    They are the strongly connected components of the graph restricted to those nodes that
    have more than one node, or one node with an edge to itself. Each group is in list order.
    """
    order = {n.id: i for i, n in enumerate(definition.nodes)}
    movers = [n.id for n in definition.nodes if not _waits(n) and not n.is_terminal]
    adjacency: dict[str, list[str]] = {node_id: [] for node_id in movers}
    for edge in definition.edges:
        if edge.source in adjacency and edge.target in adjacency:
            adjacency[edge.source].append(edge.target)
    groups = [sorted(c, key=order.__getitem__) for c in strongly_connected(adjacency)]
    spins = [g for g in groups if len(g) > 1 or g[0] in adjacency[g[0]]]
    return sorted((tuple(g) for g in spins), key=lambda g: order[g[0]])


def _waits(node: GraphNode) -> bool:
    """Does entering this node always end the decision (a timer, an agent)?

    A TIME node "until the schedule opens" passes straight through while the schedule is open
    (or when there is none), so in a loop it would not wait: it counts as a mover.
    """
    config = node.config
    if isinstance(config, TimeConfig) and config.until_schedule_opens:
        return False
    return node.node_type in WAITING_TYPES


def strongly_connected(adjacency: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative so deep graphs cannot exhaust the stack."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in adjacency:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            successors = adjacency[node]
            if i < len(successors):
                work.append((node, i + 1))
                successor = successors[i]
                if successor not in index:
                    work.append((successor, 0))
                elif successor in on_stack:
                    low[node] = min(low[node], index[successor])
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


def _check_spins(definition: GraphDefinition, problems: GraphProblems) -> None:
    for group in spin_cycles(definition):
        problems.add(
            ProblemCode.SPIN_CYCLE,
            node_path(group[0]),
            f"nodes {', '.join(group)} can loop without a TIME, VOICE_CALL or SMS node: an "
            "execution would spin; put a wait in the loop",
        )

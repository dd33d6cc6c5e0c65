"""What the console's pages draw, computed from service answers: a workflow's graph laid out
for inline SVG, weekly schedule bands, an execution's timeline. Pure functions, no I/O."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reachflow.domain.compile import compile_definition
from reachflow.domain.compliance.rules import RuleSet
from reachflow.domain.definition import END_COMPLETE, END_FINISH
from reachflow.domain.enums import WEEKDAYS
from reachflow.domain.errors import ProblemCollector
from reachflow.domain.schedule import DEFAULT_TCPA_SCHEDULE, WeekSchedule, parse_week_schedule
from reachflow.web.stats import EdgeCounts

NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN = 180, 56, 40, 70, 20
#: A linear chain's drawing-only first node.
START_NODE = "__start__"
#: Width of a character of an edge label (11 px text), to make room for it.
LABEL_CHAR_W = 7

# -- graph -------------------------------------------------------------------------------------


@dataclass
class GraphNode:
    id: str
    label: str
    kind: str
    detail: str = ""
    leads: int = 0
    x: int = 0
    y: int = 0


@dataclass
class GraphEdge:
    source: str
    target: str
    label: str = ""
    path: str = ""
    label_x: int = 0
    label_y: int = 0
    #: The compiled (source, target) node ids this drawn edge stands for, in the engine's
    #: ``transition`` events (a linear chain's START and END nodes are drawing-only).
    key: tuple[str, str] | None = None
    #: Distinct executions that took the edge, and that reached its source node.
    taken: int = 0
    reached: int = 0
    #: SVG text-anchor of the labels: centred on a downward edge, after a looping one.
    anchor: str = "middle"

    @property
    def rate(self) -> float | None:
        return self.taken / self.reached if self.reached else None

    def conversion(self) -> str:
        """``2/3 · 67%``, or ``0/0`` when no execution reached the source node."""
        rate = self.rate
        return f"{self.taken}/{self.reached}" + ("" if rate is None else f" · {rate:.0%}")


@dataclass
class GraphDrawing:
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    width: int
    height: int
    kind: str  # "linear" | "graph"
    leads_elsewhere: int = 0
    by_id: dict[str, GraphNode] = field(default_factory=dict)


def _duration(seconds: int) -> str:
    if seconds <= 0:
        return "at once"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def linear_graph(
    definition: dict[str, Any], agents: dict[str, str]
) -> tuple[list[GraphNode], list[GraphEdge]]:
    """Feather's steps as a chain: each step a node, then an END node; an edge carries the
    next step's delay, and a step's finish-on outcomes exit to END."""
    steps = sorted(definition.get("steps") or [], key=lambda s: s.get("order", 0))
    nodes = [GraphNode(id=START_NODE, label="Start", kind="START")]
    edges: list[GraphEdge] = []
    previous = START_NODE
    first = str(steps[0].get("id") or f"step-{steps[0].get('order')}") if steps else ""
    for step in steps:
        step_id = str(step.get("id") or f"step-{step.get('order')}")
        agent = agents.get(str(step.get("agentId")), str(step.get("agentId") or ""))
        nodes.append(
            GraphNode(
                id=step_id,
                label=f"{step.get('order')}. {step.get('type')}",
                kind=str(step.get("type") or "STEP"),
                detail=agent,
            )
        )
        delay = _duration(int(step.get("delayInSecs") or 0))
        edges.append(GraphEdge(previous, step_id, delay, key=(previous, step_id)))
        finish = step.get("finishOn") or []
        if finish:
            edges.append(
                GraphEdge(
                    step_id,
                    "__end__",
                    "finish: " + ", ".join(finish),
                    key=(step_id, END_FINISH),
                )
            )
        previous = step_id
    nodes.append(GraphNode(id="__end__", label="End", kind="END"))
    # After the last step the engine goes to END (or, isInfinite, back to the first step).
    after_last = first if definition.get("isInfinite") and first else END_COMPLETE
    edges.append(GraphEdge(previous, "__end__", "done", key=(previous, after_last)))
    return nodes, edges


def dialnexa_graph(
    definition: dict[str, Any], agents: dict[str, str]
) -> tuple[list[GraphNode], list[GraphEdge]]:
    nodes = []
    for raw in definition.get("nodes") or []:
        config = raw.get("config") or {}
        agent_id = config.get("agent_id") or config.get("agentId")
        detail = agents.get(str(agent_id), "") if agent_id else ""
        if not detail and raw.get("node_type") == "WAIT":
            detail = ", ".join(f"{k}={v}" for k, v in sorted(config.items()))[:40]
        nodes.append(
            GraphNode(
                id=str(raw.get("id")),
                label=str(raw.get("label") or raw.get("node_type") or raw.get("id")),
                kind=str(raw.get("node_type") or "NODE"),
                detail=detail,
            )
        )
    edges = []
    for e in definition.get("edges") or []:
        source, target = str(e.get("from_node_id")), str(e.get("to_node_id"))
        edges.append(GraphEdge(source, target, str(e.get("label") or ""), key=(source, target)))
    return nodes, edges


def edge_conversion(edges: list[GraphEdge], counts: EdgeCounts, entry: str | None) -> None:
    """Each drawn edge's ``taken`` and ``reached`` (distinct executions) from ``counts``.
    Edges between the same two nodes (labelled differently) share one count: the history
    records the nodes an execution moved between, and which label matched it only as the
    outcome's text."""

    def reached(node: str) -> int:
        entered = counts.entered.get(node, 0)
        return max(entered, counts.started) if node == entry else entered

    for e in edges:
        if e.key is None:
            continue
        source, target = e.key
        if source == START_NODE:  # the drawing's Start: every execution that started
            e.taken = e.reached = counts.started
            continue
        e.taken = counts.edges.get((source, target), 0)
        e.reached = reached(source)


def _layers(nodes: list[GraphNode], edges: list[GraphEdge]) -> dict[str, int]:
    """Each node's row: its breadth-first distance from an entry node (START, else nodes
    nothing enters); nodes no entry reaches go below the rest."""
    incoming = {e.target for e in edges if e.source != e.target}
    roots = (
        [n.id for n in nodes if n.kind == "START"]
        or [n.id for n in nodes if n.id not in incoming]
        or [n.id for n in nodes[:1]]
    )
    outgoing: dict[str, list[str]] = {}
    for e in edges:
        outgoing.setdefault(e.source, []).append(e.target)
    depth: dict[str, int] = {}
    queue = deque((r, 0) for r in roots)
    while queue:
        node_id, d = queue.popleft()
        if node_id in depth:
            continue
        depth[node_id] = d
        queue.extend((t, d + 1) for t in outgoing.get(node_id, []) if t not in depth)
    bottom = max(depth.values(), default=-1) + 1
    for n in nodes:
        depth.setdefault(n.id, bottom)
    return depth


def entry_of(definition: dict[str, Any]) -> str | None:
    """The node a new execution enters first, as the engine compiles the definition."""
    try:
        return compile_definition(definition).entry
    except (ValueError, KeyError, TypeError):
        return None


def draw_graph(
    definition: dict[str, Any],
    agents: dict[str, str],
    leads_at: dict[str, int],
    counts: EdgeCounts | None = None,
) -> GraphDrawing:
    """Lay the workflow out top to bottom in layers (breadth first from the entry nodes), and
    route each edge; ``leads_at`` (node id -> active executions there) labels the nodes,
    ``counts`` (the workflow's history) the edges with their conversion."""
    is_graph = isinstance(definition.get("nodes"), list)
    nodes, edges = (dialnexa_graph if is_graph else linear_graph)(definition, agents)
    if counts is not None:
        edge_conversion(edges, counts, entry_of(definition))
    by_id = {n.id: n for n in nodes}
    elsewhere = 0
    for node_id, count in leads_at.items():
        base = node_id.split("#", 1)[0]
        if base in by_id:
            by_id[base].leads += count
        else:
            elsewhere += count
    edges = [e for e in edges if e.source in by_id and e.target in by_id]
    # A chain is one step per row, END last; a graph is laid out in breadth-first layers.
    depth = _layers(nodes, edges) if is_graph else {n.id: i for i, n in enumerate(nodes)}
    layers: dict[int, list[GraphNode]] = {}
    for n in nodes:
        layers.setdefault(depth[n.id], []).append(n)
    widest = max((len(v) for v in layers.values()), default=1)
    width = MARGIN * 2 + widest * NODE_W + (widest - 1) * GAP_X
    for d, members in layers.items():
        row_width = len(members) * NODE_W + (len(members) - 1) * GAP_X
        left = (width - row_width) // 2
        for i, n in enumerate(members):
            n.x = left + i * (NODE_W + GAP_X)
            n.y = MARGIN + d * (NODE_H + GAP_Y)
    height = MARGIN * 2 + (max(layers, default=0) + 1) * (NODE_H + GAP_Y) - GAP_Y
    right = max((n.x + NODE_W for n in nodes), default=MARGIN)
    loops = 0
    drawn: set[tuple[str, str]] = set()
    for e in edges:
        a, b = by_id[e.source], by_id[e.target]
        # Straight down to the next row, once per pair of nodes; an edge that skips rows
        # (through the nodes between) or repeats a pair goes round the right instead, so
        # neither it nor its labels hide behind a node or another edge.
        if b.y - a.y == NODE_H + GAP_Y and (e.source, e.target) not in drawn:
            drawn.add((e.source, e.target))
            x1, y1 = a.x + NODE_W // 2, a.y + NODE_H
            x2, y2 = b.x + NODE_W // 2, b.y
            mid = (y1 + y2) // 2
            e.path = f"M{x1},{y1} C{x1},{mid} {x2},{mid} {x2},{y2 - 6}"
            e.label_x, e.label_y = (x1 + x2) // 2, mid
        else:  # back, sideways, skipping or repeated: round the right of the drawing
            loops += 1
            out = right + 16 * loops
            below, above = a.y + NODE_H + 8 * loops, b.y - 8 * loops
            x1, x2 = a.x + NODE_W // 2 + 20, b.x + NODE_W // 2 + 20
            e.path = (
                f"M{x1},{a.y + NODE_H} L{x1},{below} L{out},{below} L{out},{above} "
                f"L{x2},{above} L{x2},{b.y - 6}"
            )
            # The label to the right of the line, the drawing widened to hold it.
            e.label_x, e.label_y, e.anchor = out + 4, (below + above) // 2, "start"
            text = max(len(e.label[:28]), len(e.conversion()) if e.key else 0)
            width = max(width, out + 4 + text * LABEL_CHAR_W + MARGIN)
    return GraphDrawing(
        nodes, edges, width, height, "graph" if is_graph else "linear", elsewhere, by_id
    )


# -- weekly bands -------------------------------------------------------------------------------


@dataclass
class WeekBand:
    day: str
    ranges: list[tuple[int, int]]  # minutes after local midnight, [start, end)

    def describe(self) -> str:
        if not self.ranges:
            return "closed"
        return ", ".join(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in self.ranges)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def bands_of(schedule: WeekSchedule) -> list[WeekBand]:
    return [
        WeekBand(day, [(r.start_minute, r.end_minute) for r in schedule.ranges_on(i)])
        for i, day in enumerate(WEEKDAYS)
    ]


def schedule_bands(raw: object) -> list[WeekBand] | None:
    """A stored weekday schedule (Feather JSON) as bands; None if absent or unreadable."""
    if raw is None:
        return None
    problems = ProblemCollector()
    schedule = parse_week_schedule(raw, "schedule", problems)
    return None if problems.problems else bands_of(schedule)


def default_tcpa_bands() -> list[WeekBand]:
    return bands_of(DEFAULT_TCPA_SCHEDULE)


def intersect(*weeks: list[WeekBand]) -> list[WeekBand]:
    """Where every one of ``weeks`` is open, day by day."""
    out = []
    for i, day in enumerate(WEEKDAYS):
        minutes: set[int] | None = None
        for week in weeks:
            open_now = {m for a, b in week[i].ranges for m in range(a, b)}
            minutes = open_now if minutes is None else minutes & open_now
        out.append(WeekBand(day, _ranges(sorted(minutes or set()))))
    return out


def _ranges(minutes: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for m in minutes:
        if out and out[-1][1] == m:
            out[-1] = (out[-1][0], m + 1)
        else:
            out.append((m, m + 1))
    return out


# -- rules and timelines ------------------------------------------------------------------------


def describe_rule(rules: RuleSet, ref: str) -> dict[str, Any]:
    """A rule reference as events carry it (``US-FED-64.1200c1-hours@1``, ``workflowSchedule@v2``)
    with its citation and source when it is a statute rule."""
    rule_id, _, version = ref.partition("@")
    if rule_id == "workflowSchedule":
        return {"id": ref, "citation": f"the workflow's schedule (version {version})"}
    if rule_id == "tcpaSchedule":
        return {"id": ref, "citation": f"the workflow's TCPA schedule ({version})"}
    try:
        rule = rules.by_id(rule_id)
    except KeyError:
        return {"id": ref, "citation": ""}
    return {
        "id": ref,
        "citation": rule.citation,
        "source": rule.source if rule.source.startswith(("https://", "http://")) else "",
        "jurisdiction": rule.jurisdiction,
        "confidence": rule.confidence.value,
        "window": bands_of(rule.window) if rule.window is not None else None,
    }


@dataclass
class TimelineEntry:
    at: datetime
    kind: str
    title: str
    details: list[tuple[str, str]] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)


EVENT_TITLES = {
    "started": "Execution started",
    "scheduled": "Step scheduled",
    "deferred": "Step deferred",
    "dispatched": "Handed to the agent",
    "reported": "Agent reported",
    "transition": "Moved on",
    "paused": "Paused",
    "resumed": "Resumed",
    "cancelled": "Cancelled",
    "completed": "Completed",
    "failed": "Failed",
    "dispatch_waiting": "Waiting to dispatch",
}


def timeline(events: list[Any], rules: RuleSet, names: dict[str, str]) -> list[TimelineEntry]:
    """Every event in order, the deferrals with the rules (and citations) that caused them."""
    out = []
    for e in events:
        data = dict(e.data or {})
        entry = TimelineEntry(e.at, e.kind, EVENT_TITLES.get(e.kind, e.kind.replace("_", " ")))
        for key in ("node", "source", "target"):
            if key in data:
                node = str(data.pop(key))
                entry.details.append((key, names.get(node.split("#", 1)[0], node)))
        for ref in data.pop("rules", None) or []:
            entry.rules.append(describe_rule(rules, str(ref)))
        entry.zones = [str(z) for z in data.pop("zones", None) or []]
        data.pop("stepExecutionId", None)
        for key, value in data.items():
            if isinstance(value, dict | list):
                value = (
                    ", ".join(f"{k}: {v}" for k, v in value.items())
                    if isinstance(value, dict)
                    else ", ".join(str(v) for v in value)
                )
            entry.details.append((key, str(value)))
        out.append(entry)
    return out


def safe_link(url: object) -> str:
    """An http(s) URL to link to, else empty (no javascript: or data: links)."""
    text = str(url or "")
    return text if text.startswith(("https://", "http://")) else ""

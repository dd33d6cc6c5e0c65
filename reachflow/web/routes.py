"""The console's pages and actions. Every read and write goes through the services the API
uses, with the organization of the signed-in key; nothing here touches another organization."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from reachflow.api.errors import status_of
from reachflow.api.feather_json import iso
from reachflow.api.json_body import check_text
from reachflow.bootstrap import Services
from reachflow.domain.enums import Disposition, ExecutionStatus
from reachflow.domain.errors import (
    FieldError,
    NotFound,
    ReachflowError,
    ValidationFailed,
)
from reachflow.domain.instants import BadInstant, parse_iso_instant
from reachflow.services.phones import to_e164
from reachflow.store.accounts import ApiKeyRecord
from reachflow.store.executions import ExecutionFilter
from reachflow.web import stats, views
from reachflow.web.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SessionClaims,
    Signer,
    same_token,
)

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["iso"] = iso
router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
ACTIVE = ("CREATED", "RUNNING", "PAUSED")
#: Pages' security headers: nothing from another origin, no inline script, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
MAX_FIELD = 200


def install(app: FastAPI) -> None:
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(router)


# -- sessions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Console:
    """The signed-in operator: the services, their key's organization, the CSRF token."""

    services: Services
    org: str
    organization: str
    key_prefix: str
    csrf: str
    claims: SessionClaims


def _signer(request: Request) -> Signer:
    signer: Signer = request.app.state.console_signer
    return signer


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _key_by_hash(services: Services, key_hash: str) -> ApiKeyRecord | None:
    """The unrevoked key with this hash (the same lookup ``AccountService.identify`` makes)."""
    with services.db.read() as conn:
        found = services.store.accounts.find_key_by_hash(conn, key_hash)
    if found is None or found[0].revoked_at is not None:
        return None
    return found[0]


def current(request: Request) -> Console | None:
    signer = _signer(request)
    claims = signer.read(request.cookies.get(SESSION_COOKIE))
    if claims is None:
        return None
    services = _services(request)
    key = _key_by_hash(services, claims.key_hash)
    if key is None:
        return None
    return Console(
        services,
        key.organization_id,
        key.organization,
        key.prefix,
        signer.csrf_token(claims),
        claims,
    )


def render(
    request: Request,
    template: str,
    console: Console | None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    context = {"console": console, "nav": values.pop("nav", ""), **values}
    response = templates.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def _to_sign_in(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/console/sign-in?" + urlencode({"next": target}), status_code=303)


def _safe_next(raw: object) -> str:
    text = str(raw or "")
    if text.startswith("/console") and not text.startswith("//") and "\\" not in text:
        return text
    return "/console/executions"


def _field(raw: object, name: str) -> str:
    """A form or query value: text without NUL, at most ``MAX_FIELD`` characters, trimmed."""
    if raw is None:
        return ""
    text = str(raw).strip()
    check_text(text, name)
    if len(text) > MAX_FIELD:
        raise ValidationFailed(FieldError(name, f"at most {MAX_FIELD} characters"))
    return text


class Refused(Exception):
    """A console POST without a session (401) or with a wrong CSRF token (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _post(request: Request) -> tuple[Console, dict[str, str]]:
    """The signed-in operator and the form, after the CSRF check; ``Refused`` otherwise."""
    console = current(request)
    if console is None:
        raise Refused(401, "Your session has ended: sign in again.")
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    if not _signer(request).csrf_ok(console.claims, values.get("csrf")):
        raise Refused(403, "This form is out of date or was not sent from the console (CSRF).")
    return console, values


def _refused(request: Request, exc: Refused) -> HTMLResponse:
    console = current(request) if exc.status == 403 else None
    return render(request, "error.html", console, exc.status, message=exc.message)


def _failed(request: Request, console: Console, exc: ReachflowError) -> HTMLResponse:
    return render(
        request,
        "error.html",
        console,
        status_of(exc),
        message=exc.message,
        problems=getattr(exc, "problems", None),
    )


# -- sign in and out ---------------------------------------------------------------------------


@router.get("/")
def home(request: Request) -> Response:
    if current(request) is None:
        return RedirectResponse("/console/sign-in", status_code=303)
    return RedirectResponse("/console/executions", status_code=303)


@router.get("/console")
def console_home(request: Request) -> Response:
    return home(request)


def _sign_in_page(request: Request, status: int = 200, error: str = "") -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or _new_token()
    response = render(
        request,
        "sign_in.html",
        None,
        status,
        csrf=token,
        error=error,
        next=_safe_next(request.query_params.get("next")),
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _new_token() -> str:
    import secrets

    return secrets.token_urlsafe(24)


@router.get("/console/sign-in")
def sign_in_form(request: Request) -> Response:
    if current(request) is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    return _sign_in_page(request)


@router.post("/console/sign-in")
async def sign_in(request: Request) -> Response:
    form = await request.form()
    given = form.get("csrf")
    if not same_token(
        request.cookies.get(LOGIN_CSRF_COOKIE), given if isinstance(given, str) else None
    ):
        return _sign_in_page(request, 403, "The sign-in form was out of date; try again.")
    raw_key = form.get("api_key")
    key_text = raw_key.strip() if isinstance(raw_key, str) else ""
    services = _services(request)
    try:
        record = services.accounts.identify(key_text) if key_text else None
    except ReachflowError:
        record = None
    if record is None:
        return _sign_in_page(request, 401, "That API key is not valid (unknown or revoked).")
    key_hash = hashlib.sha256(key_text.encode()).hexdigest()
    target = _safe_next(form.get("next"))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        _signer(request).issue(key_hash),
        max_age=_signer(request).session_seconds,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return response


@router.post("/console/sign-out")
async def sign_out(request: Request) -> Response:
    try:
        await _post(request)
    except Refused as exc:
        if exc.status == 403:
            return _refused(request, exc)
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- executions --------------------------------------------------------------------------------


@dataclass
class ExecutionQuery:
    status: str = ""
    phone: str = ""
    lead: str = ""
    disposition: str = ""
    due_before: str = ""
    workflow: str = ""
    cursor: str = ""

    def params(self, **override: str) -> str:
        values = {
            "status": self.status,
            "phone": self.phone,
            "lead": self.lead,
            "disposition": self.disposition,
            "due_before": self.due_before,
            "workflow": self.workflow,
            **override,
        }
        return urlencode({k: v for k, v in values.items() if v})


def _query(request: Request) -> ExecutionQuery:
    q = request.query_params
    return ExecutionQuery(
        **{
            name: _field(q.get(name), name)
            for name in (
                "status",
                "phone",
                "lead",
                "disposition",
                "due_before",
                "workflow",
                "cursor",
            )
        }
    )


def _instant(text: str, name: str) -> datetime:
    """ISO 8601 with an offset, or a browser's ``YYYY-MM-DDTHH:MM`` read as UTC."""
    try:
        return parse_iso_instant(text)
    except BadInstant:
        try:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError:
            raise ValidationFailed(
                FieldError(name, "must be a date and time, e.g. 2026-03-09T14:00 (UTC)")
            ) from None


def _filter(console: Console, q: ExecutionQuery) -> ExecutionFilter:
    if q.status and q.status not in ExecutionStatus.__members__:
        raise ValidationFailed(FieldError("status", "unknown status"))
    if q.disposition and q.disposition not in Disposition.__members__:
        raise ValidationFailed(FieldError("disposition", "unknown disposition"))
    return ExecutionFilter(
        organization_id=console.org,
        workflow_id=q.workflow or None,
        status=q.status or None,
        customer_lead_id=q.lead or None,
        phone=to_e164(q.phone, "phone") if q.phone else None,
        disposition=q.disposition or None,
        due_before=_instant(q.due_before, "due_before") if q.due_before else None,
    )


def _workflow_names(console: Console) -> dict[str, str]:
    records, _ = console.services.workflows.list(console.org, limit=1000, offset=0)
    return {w.id: w.name for w in records}


def _execution_rows(console: Console, q: ExecutionQuery) -> dict[str, Any]:
    views_, next_cursor = console.services.executions.list(
        _filter(console, q),
        limit=PAGE_SIZE,
        cursor=q.cursor or None,
        enriched=False,
        newest_first=True,
    )
    return {"rows": [v.record for v in views_], "next_cursor": next_cursor}


@router.get("/console/executions")
def executions_page(request: Request) -> Response:
    console = current(request)
    if console is None:
        return _to_sign_in(request)
    values: dict[str, Any] = {
        "nav": "executions",
        "statuses": list(ExecutionStatus.__members__),
        "dispositions": list(Disposition.__members__),
        "workflows": {},
        "rows": [],
        "next_cursor": None,
        "error": None,
    }
    status = 200
    try:
        q = _query(request)
        values["q"] = q
        values["workflows"] = _workflow_names(console)
        values.update(_execution_rows(console, q))
    except ReachflowError as exc:
        values["q"] = values.get("q") or ExecutionQuery()
        values["error"] = exc
        status = status_of(exc)
    return render(request, "executions.html", console, status, **values)


@router.get("/console/executions/rows")
def executions_rows(request: Request) -> Response:
    """The list's table body alone, for live updates."""
    console = current(request)
    if console is None:
        return Response(status_code=401)
    try:
        q = _query(request)
        values = _execution_rows(console, q)
    except ReachflowError as exc:
        return Response(exc.message, status_code=status_of(exc))
    return render(
        request,
        "_execution_rows.html",
        console,
        q=q,
        workflows=_workflow_names(console),
        **values,
    )


def _execution_values(console: Console, execution_id: str) -> dict[str, Any]:
    services = console.services
    view = services.executions.get(console.org, None, execution_id)  # type: ignore[arg-type]
    events = services.executions.events(console.org, None, execution_id)  # type: ignore[arg-type]
    try:
        workflow = services.workflows.get(console.org, view.record.workflow_id)
    except NotFound:  # a deleted workflow: its executions' history stays visible
        workflow = None
    agents = {a.id: a.name for a in services.agents.list(console.org)}
    names = _node_names(view.definition)
    calls = [
        {
            "step": s,
            "call": s.agent_call or {},
            "agent": agents.get(s.agent_id or "", s.agent_id or ""),
            "recording": views.safe_link((s.agent_call or {}).get("recordingUrl")),
        }
        for s in view.steps
        if s.agent_call
    ]
    return {
        "view": view,
        "record": view.record,
        "workflow": workflow,
        "timeline": views.timeline(events, services.compliance.rules, names),
        "steps": [s for s in view.steps if s.kind == "ACTION"],
        "calls": calls,
        "agents": agents,
        "node_names": names,
        "can_pause": view.record.status in ("CREATED", "RUNNING"),
        "can_resume": view.record.status == "PAUSED",
        "can_cancel": view.record.status in ACTIVE,
    }


def _node_names(definition: dict[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for step in definition.get("steps") or []:
        names[str(step.get("id"))] = f"step {step.get('order')} ({step.get('type')})"
    for node in definition.get("nodes") or []:
        names[str(node.get("id"))] = str(node.get("label") or node.get("node_type") or "")
    return names


@router.get("/console/executions/{execution_id}")
def execution_page(request: Request, execution_id: str) -> Response:
    console = current(request)
    if console is None:
        return _to_sign_in(request)
    try:
        _field(execution_id, "executionId")
        values = _execution_values(console, execution_id)
    except ReachflowError as exc:
        return _failed(request, console, exc)
    done = request.query_params.get("done", "")
    return render(
        request,
        "execution.html",
        console,
        nav="executions",
        notice={"paused": "Paused.", "resumed": "Resumed.", "cancelled": "Cancelled."}.get(done),
        **values,
    )


@router.get("/console/executions/{execution_id}/live")
def execution_live(request: Request, execution_id: str) -> Response:
    """The execution's status, actions and timeline alone, for live updates."""
    console = current(request)
    if console is None:
        return Response(status_code=401)
    try:
        _field(execution_id, "executionId")
        values = _execution_values(console, execution_id)
    except ReachflowError as exc:
        return Response(exc.message, status_code=status_of(exc))
    return render(request, "_execution_live.html", console, **values)


ACTIONS = {
    "pause": ("PAUSED", "paused"),
    "resume": ("RUNNING", "resumed"),
    "cancel": ("CANCELLED", "cancelled"),
}


@router.post("/console/executions/{execution_id}/{action}")
async def execution_action(request: Request, execution_id: str, action: str) -> Response:
    try:
        console, _form = await _post(request)
    except Refused as exc:
        return _refused(request, exc)
    if action not in ACTIONS:
        return render(request, "error.html", console, 404, message="No such action.")
    status, done = ACTIONS[action]
    try:
        _field(execution_id, "executionId")
        record = console.services.executions.get(console.org, None, execution_id).record  # type: ignore[arg-type]
        console.services.executions.update(
            console.org, record.workflow_id, execution_id, {"status": status}
        )
    except ReachflowError as exc:
        return _failed(request, console, exc)
    return RedirectResponse(f"/console/executions/{execution_id}?done={done}", status_code=303)


@router.get("/console/bulk-cancel")
def bulk_cancel_confirm(request: Request) -> Response:
    """The confirm step of a bulk cancel: what would be cancelled, and the button."""
    console = current(request)
    if console is None:
        return _to_sign_in(request)
    try:
        q = _query(request)
        if not (q.phone or q.lead):
            raise ValidationFailed(
                FieldError("phone", "give a phone number or a lead id to cancel by")
            )
        flt = _filter(console, ExecutionQuery(phone=q.phone, lead=q.lead, workflow=q.workflow))
        active = ExecutionFilter(
            organization_id=console.org,
            workflow_id=flt.workflow_id,
            phone=flt.phone,
            customer_lead_id=flt.customer_lead_id,
            statuses=ACTIVE,
        )
        found, more = console.services.executions.list(
            active, limit=PAGE_SIZE, cursor=None, enriched=False, newest_first=True
        )
    except ReachflowError as exc:
        return _failed(request, console, exc)
    return render(
        request,
        "bulk_cancel.html",
        console,
        nav="executions",
        q=q,
        rows=[v.record for v in found],
        more=more is not None,
        workflows=_workflow_names(console),
    )


@router.post("/console/bulk-cancel")
async def bulk_cancel(request: Request) -> Response:
    try:
        console, form = await _post(request)
    except Refused as exc:
        return _refused(request, exc)
    try:
        phone = _field(form.get("phone"), "phone")
        lead = _field(form.get("lead"), "lead")
        workflow = _field(form.get("workflow"), "workflow")
        if not (phone or lead):
            raise ValidationFailed(FieldError("phone", "give a phone number or a lead id"))
        if workflow:
            console.services.workflows.get(console.org, workflow)
        count = console.services.executions.cancel_matching(
            console.org,
            workflow_id=workflow or None,
            phone=to_e164(phone, "phone") if phone else None,
            customer_lead_id=lead or None,
            reason="cancelled from the console",
        )
    except ReachflowError as exc:
        return _failed(request, console, exc)
    return render(
        request, "notice.html", console, nav="executions", message=f"Cancelled {count} executions."
    )


# -- workflows ---------------------------------------------------------------------------------


@router.get("/console/workflows")
def workflows_page(request: Request) -> Response:
    console = current(request)
    if console is None:
        return _to_sign_in(request)
    services = console.services
    records, total = services.workflows.list(console.org, limit=100, offset=0)
    now = services.clock.now()
    recent = services.executions.count_by_workflow(console.org, since=now - timedelta(days=7))
    every = services.executions.count_by_workflow(console.org)
    rows = []
    for w in records:
        week = recent.get(w.id, {})
        rows.append(
            {
                "workflow": w,
                "active": sum(every.get(w.id, {}).get(s, 0) for s in ACTIVE),
                "started": sum(week.values()),
                "completed": week.get("COMPLETED", 0),
                "stopped": week.get("CANCELLED", 0) + week.get("FAILED", 0),
                "running": sum(week.get(s, 0) for s in ACTIVE),
            }
        )
    return render(request, "workflows.html", console, nav="workflows", rows=rows, total=total)


@router.get("/console/workflows/{workflow_id}")
def workflow_page(request: Request, workflow_id: str) -> Response:
    console = current(request)
    if console is None:
        return _to_sign_in(request)
    services = console.services
    try:
        _field(workflow_id, "workflowId")
        workflow = services.workflows.get(console.org, workflow_id)
        versions = services.graph_workflows.versions(console.org, workflow_id)
    except ReachflowError as exc:
        return _failed(request, console, exc)
    agents = {a.id: a.name for a in services.agents.list(console.org)}
    return render(
        request,
        "workflow.html",
        console,
        nav="workflows",
        workflow=workflow,
        **_graph_values(console, workflow.id, workflow.definition, agents),
        versions=[
            {
                "record": v,
                "created": created,
                "summary": _summary(v.definition),
                "schedule": views.schedule_bands(v.workflow_schedule),
            }
            for v, created in sorted(versions, key=lambda p: p[0].version, reverse=True)
        ],
        schedule=views.schedule_bands(workflow.workflow_schedule),
        tcpa=views.schedule_bands(workflow.tcpa_schedule) or views.default_tcpa_bands(),
        tcpa_default=workflow.tcpa_schedule is None,
    )


def _graph_values(
    console: Console, workflow_id: str, definition: dict[str, Any], agents: dict[str, str]
) -> dict[str, Any]:
    leads = console.services.executions.count_by_node(console.org, workflow_id)
    with console.services.db.read() as conn:
        counts = stats.edge_counts(conn, console.org, workflow_id)
    return {"graph": views.draw_graph(definition, agents, leads, counts)}


@router.get("/console/workflows/{workflow_id}/graph")
def workflow_graph(request: Request, workflow_id: str) -> Response:
    """The graph alone, for live updates of the leads at each node."""
    console = current(request)
    if console is None:
        return Response(status_code=401)
    try:
        _field(workflow_id, "workflowId")
        workflow = console.services.workflows.get(console.org, workflow_id)
    except ReachflowError as exc:
        return Response(exc.message, status_code=status_of(exc))
    agents = {a.id: a.name for a in console.services.agents.list(console.org)}
    return render(
        request,
        "_graph.html",
        console,
        workflow=workflow,
        **_graph_values(console, workflow.id, workflow.definition, agents),
    )


def _summary(definition: dict[str, Any]) -> str:
    if isinstance(definition.get("nodes"), list):
        return f"{len(definition['nodes'])} nodes, {len(definition.get('edges') or [])} edges"
    steps = definition.get("steps") or []
    return " → ".join(str(s.get("type")) for s in steps) or "no steps"


# -- compliance --------------------------------------------------------------------------------


@router.get("/console/compliance")
def compliance_page(request: Request) -> Response:
    console = current(request)
    if console is None:
        return _to_sign_in(request)
    services = console.services
    q = request.query_params
    values: dict[str, Any] = {"nav": "compliance", "answer": None, "error": None}
    status = 200
    try:
        form = {
            k: _field(q.get(k), k)
            for k in ("phone", "zipcode", "state", "channel", "at", "workflow")
        }
        values["form"] = form
        values["workflows"] = _workflow_names(console)
        if form["phone"]:
            at = iso(_instant(form["at"], "at")) if form["at"] else None
            answer = services.contacts.explain(
                console.org,
                phone=form["phone"],
                zipcode=form["zipcode"] or None,
                state=form["state"] or None,
                channel=(form["channel"] or "CALL").upper(),
                at=at,
                workflow_id=form["workflow"] or None,
                needs_tcpa=True,
            )
            values["answer"] = answer
            values["windows"] = _explain_week(console, answer, form["workflow"])
    except ReachflowError as exc:
        values.setdefault("form", {})
        values.setdefault("workflows", {})
        values["error"] = exc
        status = status_of(exc)
    return render(request, "compliance.html", console, status, **values)


def _explain_week(console: Console, answer: dict[str, Any], workflow_id: str) -> dict[str, Any]:
    """The week drawn: each applied rule's window, the workflow's schedules, and where all of
    them are open (in each rule's local time)."""
    rules = console.services.compliance.rules
    rows = []
    for rule in answer.get("appliedRules") or []:
        described = views.describe_rule(rules, str(rule.get("id")))
        if described.get("window"):
            rows.append({"name": rule.get("id"), "bands": described["window"]})
    if workflow_id:
        workflow = console.services.workflows.get(console.org, workflow_id)
        schedule = views.schedule_bands(workflow.workflow_schedule)
        if schedule:
            rows.append({"name": f"workflow schedule ({workflow.timezone})", "bands": schedule})
        rows.append(
            {
                "name": "TCPA schedule",
                "bands": views.schedule_bands(workflow.tcpa_schedule) or views.default_tcpa_bands(),
            }
        )
    allowed = views.intersect(*(r["bands"] for r in rows)) if rows else None
    return {"rows": rows, "allowed": allowed}


@router.get("/console/suppressions")
def suppressions_page(request: Request) -> Response:
    console = current(request)
    if console is None:
        return _to_sign_in(request)
    values: dict[str, Any] = {"nav": "suppressions", "error": None, "rows": [], "next_cursor": None}
    status = 200
    try:
        phone = _field(request.query_params.get("phone"), "phone")
        cursor = _field(request.query_params.get("cursor"), "cursor")
        values["phone"] = phone
        rows, next_cursor = console.services.contacts.list_suppressions(
            console.org,
            phone=phone or None,
            include_removed=True,
            limit=PAGE_SIZE,
            cursor=cursor or None,
        )
        values.update(rows=rows, next_cursor=next_cursor)
    except ReachflowError as exc:
        values["error"] = exc
        status = status_of(exc)
    done = request.query_params.get("done", "")
    values["notice"] = _field(done, "done") if done else None
    return render(request, "suppressions.html", console, status, **values)


@router.post("/console/suppressions")
async def add_suppression(request: Request) -> Response:
    try:
        console, form = await _post(request)
    except Refused as exc:
        return _refused(request, exc)
    try:
        body = {
            "phoneNumber": _field(form.get("phone"), "phoneNumber"),
            "channel": _field(form.get("channel"), "channel") or "ALL",
            "reason": _field(form.get("reason"), "reason") or "added from the console",
        }
        added = console.services.contacts.suppress(console.org, body)
    except ReachflowError as exc:
        return _failed(request, console, exc)
    message = (
        f"{added.record.phone} suppressed ({added.record.channel}); "
        f"{added.cancelled_count} waiting executions cancelled."
    )
    return RedirectResponse(
        "/console/suppressions?" + urlencode({"done": message}), status_code=303
    )


@router.post("/console/suppressions/{suppression_id}/remove")
async def remove_suppression(request: Request, suppression_id: str) -> Response:
    try:
        console, form = await _post(request)
    except Refused as exc:
        return _refused(request, exc)
    try:
        _field(suppression_id, "suppressionId")
        reason = _field(form.get("reason"), "reason") or "removed from the console"
        removed = console.services.contacts.unsuppress(console.org, suppression_id, reason)
    except ReachflowError as exc:
        return _failed(request, console, exc)
    return RedirectResponse(
        "/console/suppressions?" + urlencode({"done": f"{removed.phone} removed."}),
        status_code=303,
    )


# -- agents ------------------------------------------------------------------------------------


def _agent_rows(console: Console) -> list[dict[str, Any]]:
    return [
        {"agent": a, "health": console.services.agent_health.health(a.id)}
        for a in console.services.agents.list(console.org)
    ]


@router.get("/console/agents")
def agents_page(request: Request) -> Response:
    console = current(request)
    if console is None:
        return _to_sign_in(request)
    return render(request, "agents.html", console, nav="agents", rows=_agent_rows(console))


@router.get("/console/agents/rows")
def agents_rows(request: Request) -> Response:
    console = current(request)
    if console is None:
        return Response(status_code=401)
    return render(request, "_agent_rows.html", console, rows=_agent_rows(console))


# -- event webhooks ----------------------------------------------------------------------------

#: A delivery-log cursor: an attempt id (a BIGINT; 18 digits always fit).
MAX_CURSOR_DIGITS = 18


@router.get("/console/webhooks")
def webhooks_page(request: Request) -> Response:
    console = current(request)
    if console is None:
        return _to_sign_in(request)
    # An organization has at most MAX_SUBSCRIPTIONS (100): one page holds them all.
    rows, total = console.services.webhooks.list(console.org, limit=100, offset=0)
    return render(request, "webhooks.html", console, nav="webhooks", rows=rows, total=total)


def _webhook_values(console: Console, webhook_id: str, cursor: str, event: str) -> dict[str, Any]:
    services = console.services
    record = services.webhooks.get(console.org, webhook_id)
    if cursor and not (cursor.isascii() and cursor.isdigit() and len(cursor) <= MAX_CURSOR_DIGITS):
        raise ValidationFailed(FieldError("cursor", "unknown cursor"))
    attempts, next_cursor = services.webhooks.deliveries(
        console.org, record.id, limit=PAGE_SIZE, cursor=cursor or None, event_id=event or None
    )
    return {
        "hook": record,
        "open_deliveries": services.webhooks.open_deliveries(record.id),
        "attempts": attempts,
        "next_cursor": next_cursor,
    }


@router.get("/console/webhooks/{webhook_id}")
def webhook_page(request: Request, webhook_id: str) -> Response:
    console = current(request)
    if console is None:
        return _to_sign_in(request)
    try:
        _field(webhook_id, "webhookId")
        cursor = _field(request.query_params.get("cursor"), "cursor")
        event = _field(request.query_params.get("event"), "event")
        values = _webhook_values(console, webhook_id, cursor, event)
    except ReachflowError as exc:
        return _failed(request, console, exc)
    queued = request.query_params.get("queued", "")
    notice = None
    if queued.isascii() and queued.isdigit() and len(queued) <= 6:
        count = int(queued)
        notice = f"Queued {count} event{'' if count == 1 else 's'} for delivery again."
    return render(
        request,
        "webhook.html",
        console,
        nav="webhooks",
        event=event,
        notice=notice,
        **values,
    )


@router.post("/console/webhooks/{webhook_id}/redeliver")
async def webhook_redeliver(request: Request, webhook_id: str) -> Response:
    """One event again (``event``), or every event the subscription takes in a time range
    (``since``, ``until``: ISO 8601, or a browser's ``YYYY-MM-DDTHH:MM`` read as UTC), through
    the service the API's ``POST /api/v1/webhooks/{id}/redeliver`` calls."""
    try:
        console, form = await _post(request)
    except Refused as exc:
        return _refused(request, exc)
    try:
        _field(webhook_id, "webhookId")
        event = _field(form.get("event"), "eventId")
        since = _field(form.get("since"), "since")
        until = _field(form.get("until"), "until")
        body: dict[str, Any] = {}
        if event:
            body["eventId"] = event
        if since:
            body["since"] = iso(_instant(since, "since"))
        if until:
            body["until"] = iso(_instant(until, "until"))
        done = console.services.webhooks.redeliver(console.org, webhook_id, body)
    except ReachflowError as exc:
        return _failed(request, console, exc)
    return RedirectResponse(
        f"/console/webhooks/{quote(webhook_id, safe='')}?" + urlencode({"queued": done.queued}),
        status_code=303,
    )

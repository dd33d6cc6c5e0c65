"""``reachflow serve | worker | migrate | api-key create``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from reachflow.bootstrap import bootstrap
from reachflow.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reachflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="API and embedded worker in one process")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--no-worker", action="store_true", help="API only")
    sub.add_parser("worker", help="a worker process beside the API (PostgreSQL)")
    sub.add_parser("migrate", help="bring the database schema up to date")
    key = sub.add_parser("api-key", help="manage API keys")
    key_sub = key.add_subparsers(dest="action", required=True)
    create = key_sub.add_parser("create", help="create a key; printed as the last line")
    create.add_argument("--org", default=None, help="organization name (created if needed)")
    args = parser.parse_args(argv)

    settings = Settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "worker":
        return _worker(settings)
    if args.command == "migrate":
        services = bootstrap(settings)
        services.close()
        print(f"schema up to date at {settings.database_url}")
        return 0
    services = bootstrap(settings)
    org_name = args.org or settings.default_organization
    org_id, api_key = services.accounts.create_api_key(org_name)
    services.close()
    print(f"organization: {org_name} ({org_id})")
    print("API key (shown once; send it as X-API-Key):")
    print(api_key)
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from reachflow.api import create_app

    services = bootstrap(settings)
    app = create_app(services, run_worker=settings.embedded_worker and not args.no_worker)
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level.lower(),
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


if __name__ == "__main__":
    raise SystemExit(main())

"""`switchboard api`: the read models over signed HTTP GETs, kept up to date in-process, and the web console."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from aiohttp import web

from connectors._ingest_clients import IngestClients, load_clients
from connectors._ingest_http import json_errors
from connectors._ingest_signing import signed_headers
from projections._api_auth import SESSION_COOKIE, Authenticator, ConsoleSessions
from projections._api_follow import Follower, ReadModels, Throughput, open_read_models
from projections._api_http import SERVICE, ApiService, answers, follower_context, observed, routes, secure_headers
from projections._api_reads import ApiError, percentile, today
from switchboard.errors import SwitchboardError
from switchboard.observability import until_stopped

__all__ = ["SESSION_COOKIE", "ApiError", "ApiService", "ConsoleSessions", "add_api_command", "api_app",
           "percentile", "run_api", "signed_get_headers"]

_log = logging.getLogger("projections.api")


def api_app(models: ReadModels, clients: IngestClients, *, follower: Follower | None = None,
            throughput: Throughput | None = None, sessions: ConsoleSessions | None = None,
            clock: Callable[[], float] = time.time, today: Callable[[], date] = today,
            ready_within: int = 1000) -> web.Application:
    """The API over these stores; with a follower, the app runs it as a task while it serves."""
    auth = Authenticator(clients, sessions or ConsoleSessions(clock=clock), clock)
    service = ApiService(models, auth, throughput or Throughput(clock=clock), follower, ready_within,
                         today=today)
    app = web.Application(middlewares=[observed, json_errors, answers])
    app[SERVICE] = service
    routes(app)
    app.on_response_prepare.append(secure_headers)
    app.cleanup_ctx.append(follower_context(service))
    return app


def signed_get_headers(client_id: str, secret: str, path_and_query: str, now: float | None = None) -> dict[str, str]:
    """The headers of a signed GET: the path with its query, exactly as sent, and an empty body."""
    return signed_headers(client_id, secret, int(time.time() if now is None else now), "GET", path_and_query, b"")


async def run_api(bootstrap: str, clients: IngestClients, root: Path, *, prefix: str = "", host: str = "127.0.0.1",
                  port: int = 8092, console_tenant: str | None = None, interval: float = 1.0,
                  ready_within: int = 1000, stop: asyncio.Event | None = None) -> None:
    """Serves until `stop` is set (by default: SIGINT or SIGTERM); prints the address, and the one-time console
    URL when asked for."""
    models = open_read_models(root)
    throughput = Throughput()
    follower = Follower(bootstrap, prefix, models, throughput, interval)
    sessions = ConsoleSessions()
    app = api_app(models, clients, follower=follower, throughput=throughput, sessions=sessions,
                  ready_within=ready_within)
    runner = web.AppRunner(app, shutdown_timeout=5.0, access_log=None)  # the console polls; /metrics counts
    try:
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        base = f"http://{host}:{runner.addresses[0][1]}"
        print(f"read API on {base}/v1/ over {prefix}sb.events.message at {bootstrap}; projections in {root} "
              f"(message-status v{models.versions['message-status']}, "
              f"delivery-stats v{models.versions['delivery-stats']})", flush=True)
        if console_tenant:
            token = sessions.issue(console_tenant)
            print(f"console for tenant {console_tenant} (one use, open within "
                  f"{sessions.token_ttl / 60:g} minutes): {base}/console/#token={token}", flush=True)
        await until_stopped(stop)
        _log.info("api stopping")
    finally:
        await runner.cleanup()
        models.close()


def add_api_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `api` to the switchboard CLI."""
    api = commands.add_parser("api", help="serve the read models (message status, statistics) and the web console")
    api.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    api.add_argument("--topic-prefix", default="")
    api.add_argument("--root", type=Path, default=Path("var/projections"),
                     help="where the projections' versions live (the API owns the serving ones while it runs)")
    api.add_argument("--host", default="127.0.0.1", help="address to bind")
    api.add_argument("--port", type=int, default=8092, help="port to bind (0: an ephemeral one)")
    api.add_argument("--clients-file", help="clients JSON or secrets folder, as for `switchboard ingest` "
                                            "(default: SWITCHBOARD_INGEST_CLIENTS)")
    api.add_argument("--console-tenant", help="print a one-time console URL for this tenant")
    api.add_argument("--ready-within", type=int, default=1000,
                     help="/readyz answers 200 when at most this many events behind (default 1000)")
    api.add_argument("--interval", type=float, default=1.0, help="seconds between catch-up rounds (default 1)")
    api.set_defaults(handler=_api)


def _api(args: argparse.Namespace) -> int:
    from switchboard.localkafka import external_bootstrap

    clients = load_clients(Path(args.clients_file) if args.clients_file else None)
    clients.check_secrets()
    bootstrap = args.bootstrap or external_bootstrap()
    if bootstrap is None:
        raise SwitchboardError("give --bootstrap or set KAFKA_BOOTSTRAP_SERVERS (`switchboard kafka start` prints it)")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(run_api(bootstrap, clients, args.root, prefix=args.topic_prefix, host=args.host, port=args.port,
                        console_tenant=args.console_tenant, interval=args.interval, ready_within=args.ready_within))
    return 0

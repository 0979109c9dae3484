"""`switchboard api`: signed sends (POST /v1/messages), the read models kept up to date in-process, the console."""

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
from connectors._ingest_sink import KafkaEventSink
from projections._api_auth import SESSION_COOKIE, Authenticator, ConsoleSessions
from projections._api_follow import Follower, ReadModels, Throughput, open_read_models
from projections._api_http import SERVICE, ApiService, answers, follower_context, observed, routes, secure_headers
from projections._api_keys import API_KEY_HEADER, new_api_key
from projections._api_limits import LimitsError, LimitsWatcher, RateLimiter, parse_limits
from projections._api_reads import ApiError, percentile, today
from projections._api_send import MAX_BODY_BYTES, SEND, SendService
from projections._api_send_log import SendLog, claims_topic_spec
from projections._message_status import message_key
from switchboard.errors import SwitchboardError
from switchboard.observability import until_stopped
from switchboard.serving import serving
from switchboard.topics import ensure_topics
from switchboard.tracing import http_middleware

__all__ = ["API_KEY_HEADER", "SESSION_COOKIE", "ApiError", "ApiService", "ConsoleSessions", "LimitsError",
           "LimitsWatcher", "SendLog", "add_api_command", "api_app", "claims_topic_spec", "new_api_key",
           "parse_limits", "percentile", "run_api", "signed_get_headers", "signed_post_headers"]

_log = logging.getLogger("projections.api")


def api_app(models: ReadModels, clients: IngestClients, *, follower: Follower | None = None,
            throughput: Throughput | None = None, sessions: ConsoleSessions | None = None,
            clock: Callable[[], float] = time.time, today: Callable[[], date] = today,
            ready_within: int = 1000, send_log: SendLog | None = None, limits: LimitsWatcher | None = None,
            max_body_bytes: int = MAX_BODY_BYTES) -> web.Application:
    """The API over these stores; with a follower (and a send log), the app runs them as tasks while it serves."""
    limiter = RateLimiter(limits or LimitsWatcher(None))
    auth = Authenticator(clients, sessions or ConsoleSessions(clock=clock), clock, limiter=limiter)
    service = ApiService(models, auth, throughput or Throughput(clock=clock), follower, ready_within,
                         today=today)
    app = web.Application(middlewares=[http_middleware, observed, json_errors, answers])
    app[SERVICE] = service
    app[SEND] = SendService(auth.gate, send_log, max_body_bytes,
                            status=lambda message_id: models.status.get(message_key(message_id)))
    routes(app)
    app.on_response_prepare.append(secure_headers)
    app.cleanup_ctx.append(follower_context(service))
    return app


def signed_get_headers(client_id: str, secret: str, path_and_query: str, now: float | None = None) -> dict[str, str]:
    """The headers of a signed GET: the path with its query, exactly as sent, and an empty body."""
    return signed_headers(client_id, secret, int(time.time() if now is None else now), "GET", path_and_query, b"")


def signed_post_headers(client_id: str, secret: str, api_key: str, path_and_query: str, body: bytes,
                        now: float | None = None) -> dict[str, str]:
    """The headers of a signed send: the API key, and the signature over the path with its query and the body."""
    stamp = int(time.time() if now is None else now)
    return {**signed_headers(client_id, secret, stamp, "POST", path_and_query, body), API_KEY_HEADER: api_key,
            "Content-Type": "application/json"}


async def run_api(bootstrap: str, clients: IngestClients, root: Path, *, prefix: str = "", host: str = "127.0.0.1",
                  port: int = 8092, console_tenant: str | None = None, interval: float = 1.0,
                  ready_within: int = 1000, stop: asyncio.Event | None = None, limits_file: Path | None = None,
                  claims_partitions: int = 6) -> None:
    """Serves until `stop` is set (by default: SIGINT or SIGTERM); prints the address, and the one-time console
    URL when asked for."""
    limits = LimitsWatcher(limits_file)  # an invalid file stops the start; later ones keep the previous limits
    await ensure_topics(bootstrap, [claims_topic_spec(prefix, claims_partitions)])
    models = open_read_models(root)
    throughput = Throughput()
    follower = Follower(bootstrap, prefix, models, throughput, interval)
    sessions = ConsoleSessions()
    async with KafkaEventSink(bootstrap) as sink:
        app = api_app(models, clients, follower=follower, throughput=throughput, sessions=sessions,
                      ready_within=ready_within, send_log=SendLog(bootstrap, sink, prefix), limits=limits)
        try:
            # No access log: the console polls; /metrics counts the requests.
            async with serving(app, host, port, shutdown_timeout=5.0, access_log=None) as url:
                _announce(url, bootstrap, prefix, root, models, sessions, console_tenant)
                await until_stopped(stop)
                _log.info("api stopping")
        finally:
            models.close()


def _announce(base: str, bootstrap: str, prefix: str, root: Path, models: ReadModels, sessions: ConsoleSessions,
              console_tenant: str | None) -> None:
    print(f"read API on {base}/v1/ over {prefix}sb.events.message at {bootstrap}; projections in {root} "
          f"(message-status v{models.versions['message-status']}, "
          f"delivery-stats v{models.versions['delivery-stats']}); send API on {base}/v1/messages", flush=True)
    if console_tenant:
        token = sessions.issue(console_tenant)
        print(f"console for tenant {console_tenant} (one use, open within "
              f"{sessions.token_ttl / 60:g} minutes): {base}/console/#token={token}", flush=True)


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
    api.add_argument("--limits-file", type=Path, help="rate-limit tiers per client and per IP (TOML, re-read when "
                                                     "it changes; docs/API.md); default: built-in tiers")
    api.add_argument("--claims-partitions", type=int, default=6,
                     help="partitions of sb.api.requests, the idempotency claims, when it is created (default 6)")
    api.set_defaults(handler=_api)
    key = commands.add_parser("api-key", help="print a new API key for a client and the hash for the clients file")
    key.set_defaults(handler=_api_key)


def _api_key(args: argparse.Namespace) -> int:
    key, hashed = new_api_key()
    print(f"API key (give it to the client once; it is not stored): {key}")
    print(f"clients file entry: \"api_key_hash\": \"{hashed}\"")
    return 0


def _api(args: argparse.Namespace) -> int:
    from switchboard.localkafka import external_bootstrap

    clients = load_clients(Path(args.clients_file) if args.clients_file else None)
    clients.check_secrets()
    bootstrap = args.bootstrap or external_bootstrap()
    if bootstrap is None:
        raise SwitchboardError("give --bootstrap or set KAFKA_BOOTSTRAP_SERVERS (`switchboard kafka start` prints it)")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(run_api(bootstrap, clients, args.root, prefix=args.topic_prefix, host=args.host, port=args.port,
                        console_tenant=args.console_tenant, interval=args.interval, ready_within=args.ready_within,
                        limits_file=args.limits_file, claims_partitions=args.claims_partitions))
    return 0

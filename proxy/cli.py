"""The `guardproxy` command: serve, check, policy test, cache, cases export, mock-server."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .yamlfile import ConfigError, Problem

__all__ = ["main"]

_CONFIG_ENV = "GUARDPROXY_CONFIG"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guardproxy", description="An OpenAI-compatible LLM gateway with guardrails."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--config", type=Path, default=Path("config.yaml"))
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    check = sub.add_parser("check", help="validate the config and every policy it references")
    check.add_argument("--config", type=Path, default=Path("config.yaml"))
    policy = sub.add_parser("policy", help="policy tools")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    ptest = policy_sub.add_parser("test", help="run a policy offline on recorded outputs")
    ptest.add_argument("policy", type=Path)
    ptest.add_argument("cases", type=Path, nargs="?")
    cache = sub.add_parser("cache", help="cache maintenance")
    cache.add_argument("action", choices=["stats", "clear", "prune"])
    cache.add_argument("--config", type=Path, default=Path("config.yaml"))
    cases = sub.add_parser("cases", help="cases files for `policy test` from recorded answers")
    cases_sub = cases.add_subparsers(dest="cases_command", required=True)
    export = cases_sub.add_parser("export", help="write a cases file from recorded answers")
    export.add_argument("--policy", required=True)
    export.add_argument("--since", help="only answers recorded this long ago at most: 90s, 30m, 24h, 7d")
    export.add_argument("--outcome", default="", help="comma-separated: rejected,flagged,repaired,...")
    export.add_argument("--feedback", choices=["bad", "good", "any", "none"])
    export.add_argument("--out", type=Path)
    export.add_argument("--config", type=Path, default=Path("config.yaml"))
    mock = sub.add_parser("mock-server", help="a standalone OpenAI-compatible mock upstream")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=9090)
    mock.add_argument("--config", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "check":
            return _check(args.config)
        if args.command == "policy":
            from .policytest import run_policy_test

            return run_policy_test(args.policy, args.cases)
        if args.command == "cache":
            return _cache(args.config, args.action)
        if args.command == "cases":
            from .cases_export import run_export
            from .settings import load_settings

            outcomes = [o.strip() for o in args.outcome.split(",") if o.strip()]
            return run_export(
                load_settings(args.config),
                policy=args.policy,
                since=args.since,
                outcomes=outcomes,
                feedback=args.feedback,
                out=args.out,
            )
        if args.command == "mock-server":
            from .mock.server import run_mock_server

            run_mock_server(args.host, args.port, args.config)
            return 0
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    return 2


def _check(config: Path) -> int:
    from .mock.behaviours import MockConfigError, validate_options
    from .services import load_runtime
    from .settings import load_settings
    from .yamlfile import load_yaml

    settings = load_settings(config)
    located = load_yaml(config)
    problems: list[Problem] = []
    try:
        load_runtime(settings)
    except ConfigError as exc:
        problems.extend(exc.problems)
    for alias, model in settings.models.items():
        for i, dep in enumerate(model.deployments):
            if dep.provider == "mock":
                try:
                    validate_options(dep.wire_model, dep.mock)
                except MockConfigError as exc:
                    problems.append(located.problem(("models", alias, "deployments", i, "mock"), str(exc)))
    if problems:
        raise ConfigError(problems)
    print(f"{config}: ok ({len(settings.models)} models)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .logs import config_secrets, configure_logging
    from .settings import load_settings

    settings = load_settings(args.config)
    configure_logging(settings.logging, secrets=config_secrets(settings))
    from .services import load_runtime

    load_runtime(settings)  # fail fast, with FILE:LINE, before binding the port
    os.environ[_CONFIG_ENV] = str(args.config.resolve())
    uvicorn.run(
        "proxy.cli:app_from_env",
        factory=True,
        host=args.host or settings.server.host,
        port=args.port if args.port is not None else settings.server.port,
        workers=args.workers or settings.server.workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=max(1, math.ceil(settings.server.shutdown_grace)),
        h11_max_incomplete_event_size=settings.server.max_header_bytes,
        http="proxy.serving:HeaderTimeoutProtocol",  # closes connections whose headers trickle
        proxy_headers=False,  # nothing reads the client address: skip rewriting it per request
    )
    return 0


def app_from_env():  # type: ignore[no-untyped-def]
    """The app factory uvicorn workers call (the config path travels in the environment)."""
    from .app import create_app

    return create_app(Path(os.environ.get(_CONFIG_ENV, "config.yaml")), freeze_gc=True)


def _cache(config: Path, action: str) -> int:
    from .cache import cache_stats, open_backend
    from .settings import load_settings

    settings = load_settings(config)

    async def run() -> None:
        backend = open_backend(
            settings.cache.backend,
            path=settings.cache.path,
            url=settings.cache.url,
            size_limit_mb=settings.cache.size_limit_mb,
            secret=settings.cache.secret,
        )
        try:
            if action == "stats":
                stats = await cache_stats(backend)  # adds hit_ratio (unknown when nothing was looked up)
                for key, value in stats.items():
                    print(f"{key}: {'unknown' if value is None else value}")
            elif action == "clear":
                print(f"cleared {await backend.clear()} entries")
            else:
                print(f"pruned {await backend.prune()} expired entries")
        finally:
            await backend.close()

    asyncio.run(run())
    return 0

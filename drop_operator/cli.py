"""Command line: ``drop-operator run`` starts the operator; more subcommands hang off the same parser.

Each command imports what it runs when it runs: ``discover`` never loads the Kubernetes runtime or
the controllers, ``run`` never loads the preview, and ``--help`` loads neither (see docs/scale.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from drop_operator import __version__
from drop_operator.controllers.settings import OperatorSettings

if TYPE_CHECKING:
    import signal

    from drop_operator.runtime import Manager

DEFAULT_NAMESPACE = "drop-system"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except where there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drop-operator",
        description="Discovers the container images that matter and keeps them warm on cluster nodes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser(
        "run",
        help="run the operator (controllers, probes, metrics)",
        description="Run the operator until SIGTERM or SIGINT. With leader election on, only one replica "
        "reconciles at a time; the others keep their caches warm and report ready.",
        formatter_class=_HelpFormatter,
    )
    conn = run.add_argument_group("cluster connection")
    conn.add_argument(
        "--kubeconfig",
        metavar="PATH",
        default=os.environ.get("KUBECONFIG") or None,
        help="kubeconfig file; without it the in-cluster ServiceAccount is used (or ~/.kube/config outside a pod)",
    )
    conn.add_argument(
        "--context", metavar="NAME", default=None, help="kubeconfig context to use (default: current context)"
    )
    conn.add_argument(
        "--namespace",
        metavar="NAME",
        default=os.environ.get("POD_NAMESPACE") or DEFAULT_NAMESPACE,
        help="operator namespace: Lease, Events, pull pods and referenced Secrets live here "
        "(env POD_NAMESPACE)",
    )
    ha = run.add_argument_group("high availability")
    ha.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="elect a leader through a Lease so that only one replica reconciles",
    )
    ha.add_argument(
        "--lease-name",
        metavar="NAME",
        default="drop-operator",
        help="name of the Lease used for leader election",
    )
    serve = run.add_argument_group("endpoints")
    serve.add_argument(
        "--metrics-bind-address",
        metavar="ADDR",
        default=":8080",
        help="host:port for /metrics; 0 disables it",
    )
    serve.add_argument(
        "--health-probe-bind-address",
        metavar="ADDR",
        default=":8081",
        help="host:port for /healthz and /readyz; 0 disables them",
    )
    tuning = run.add_argument_group("behaviour")
    tuning.add_argument(
        "--workers", metavar="N", type=_positive_int, default=2, help="concurrent reconciles per controller"
    )
    tuning.add_argument(
        "--operator-image",
        metavar="IMAGE",
        default=os.environ.get("OPERATOR_IMAGE") or OperatorSettings.operator_image,
        help="the operator's own image; pull pods copy their no-op binary from it (env OPERATOR_IMAGE)",
    )
    tuning.add_argument(
        "--warm-up",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="remove the warming taints of nodes once their gating images are cached (needs patch on nodes)",
    )
    tuning.add_argument(
        "--platform-lookup",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ask registries which platforms an image has and skip nodes that cannot run it "
        "(the operator then needs egress to the registries, or to the mirror the nodes use)",
    )
    tuning.add_argument(
        "--operator-image-pull-secrets",
        metavar="NAMES",
        type=_names,
        default=_names(os.environ.get("OPERATOR_IMAGE_PULL_SECRETS") or ""),
        help="comma-separated Secrets (in --namespace) that pull the operator's image; every pull pod "
        "lists them, since its init container pulls that image too (env OPERATOR_IMAGE_PULL_SECRETS)",
    )
    tuning.add_argument(
        "--grace-period",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="seconds in-flight reconciles get to finish after SIGTERM",
    )
    logs = run.add_argument_group("logging")
    logs.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default="auto",
        help="auto = console on a terminal, JSON otherwise",
    )
    logs.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default="info", help="minimum log level"
    )
    run.set_defaults(handler=_cmd_run)
    _add_discover_parser(sub)
    return parser


def _add_discover_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "discover",
        help="run a DiscoveryPolicy's sources once, without a cluster, and print the ranked images",
        description="Validate a DiscoveryPolicy file, query its sources once with Secrets from files, and "
        "print what the operator would publish: ranked images and per-source health. Exit status 0 when "
        "at least one source answered, 1 when none did, 2 on unusable input.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "-f",
        "--filename",
        metavar="FILE",
        required=True,
        help="YAML with one DiscoveryPolicy (Secrets in the same file are used too); - reads stdin",
    )
    parser.add_argument(
        "--secret-file",
        metavar="FILE",
        action="append",
        help="YAML with Secrets referenced by secretRef (data or stringData); may be repeated",
    )
    parser.add_argument(
        "-o", "--output", choices=["table", "json", "yaml"], default="table", help="output format"
    )
    parser.set_defaults(handler=_cmd_discover)


def _cmd_discover(args: argparse.Namespace) -> int:
    from drop_operator.preview import main_discover

    return main_discover(args)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _names(text: str) -> tuple[str, ...]:
    """``"a, b,,a"`` -> ``("a", "b")``: names in order, blanks and repeats dropped."""
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def settings_from_args(args: argparse.Namespace) -> OperatorSettings:
    """What the reconcilers are told about the deployment, from ``drop-operator run``'s arguments."""
    return OperatorSettings(
        namespace=args.namespace,
        workers=args.workers,
        operator_image=args.operator_image,
        operator_image_pull_secrets=args.operator_image_pull_secrets,
        warm_up=args.warm_up,
        platform_lookup=args.platform_lookup,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from drop_operator.runtime.logging import configure_logging

    configure_logging(args.log_format, args.log_level)
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from drop_operator.controllers import register_controllers
    from drop_operator.runtime import (
        ApiError,
        CacheSyncTimeoutError,
        KubeClient,
        LeadershipLostError,
        Manager,
    )
    from drop_operator.runtime.logging import get_logger

    log = get_logger("drop_operator.cli")
    settings = settings_from_args(args)
    try:
        client = await KubeClient.connect(args.kubeconfig, args.context)
    except Exception as exc:
        log.error("cannot load cluster configuration", error=str(exc))
        return 2
    manager = Manager(
        client,
        namespace=args.namespace,
        leader_election=args.leader_elect,
        lease_name=args.lease_name,
        metrics_addr=args.metrics_bind_address,
        probe_addr=args.health_probe_bind_address,
        grace_period=args.grace_period,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, manager, sig)
    try:
        register_controllers(manager, settings)
        log.info("starting", version=__version__, namespace=args.namespace, leader_election=args.leader_elect)
        await manager.run()
    except (CacheSyncTimeoutError, LeadershipLostError, ApiError) as exc:
        log.error("operator stopped", error=str(exc))
        return 1
    finally:
        await client.close()
    return 0


def _on_signal(manager: Manager, sig: signal.Signals) -> None:
    from drop_operator.runtime.logging import get_logger

    get_logger("drop_operator.cli").info("signal received, shutting down", signal=sig.name)
    manager.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

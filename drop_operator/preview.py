"""``drop-operator discover``: run a policy's sources once, without a cluster, and show the result.

The way to author a DiscoveryPolicy before applying it: the policy file is validated by the same
models as the CRD, the sources are built and run by the same code as in the operator
(``controllers.discoverypolicy.sync``), and what is printed is what the operator would publish in
``status.discoveredImages`` and ``status.sources`` — ranked images and per-source health.

Secrets come from files instead of the cluster: every ``kind: Secret`` in the policy file itself
(the product docs ship policy and Secret in one file) and in ``--secret-file``, matched by name.

Exit status: 0 when at least one source answered (an empty answer and a partial one count), 1
when none did (or the ``imageFilter`` is unusable), 2 when the input cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from drop_operator.api.discoverypolicy import DiscoveryPolicy, DiscoveryPolicyStatus, DiscoverySource
from drop_operator.api.meta import utcnow
from drop_operator.controllers.common import format_time
from drop_operator.controllers.discoverypolicy.secrets import (
    SECRET_NOT_FOUND,
    SecretError,
    credentials_from_secret,
)
from drop_operator.controllers.discoverypolicy.status import is_partial
from drop_operator.controllers.discoverypolicy.sync import (
    SyncOutcome,
    apply_outcomes,
    compile_filter,
    run_sources,
)
from drop_operator.discovery.errors import InvalidImageFilterError
from drop_operator.discovery.http import Credentials
from drop_operator.discovery.registry import TokenCache

__all__ = ["InputError", "discover", "load_inputs", "main_discover", "render"]

Obj = dict[str, Any]

EXIT_OK = 0
EXIT_NO_SOURCE = 1
EXIT_BAD_INPUT = 2


class InputError(Exception):
    """The policy or Secret files cannot be used; the message says which and why."""


def _documents(path: Path) -> list[Obj]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise InputError(f"{path} is not valid YAML: {err}") from None
    for doc in docs:
        if not isinstance(doc, dict):
            raise InputError(f"{path}: every document must be a mapping, found {type(doc).__name__}")
    return docs


def load_inputs(
    policy_file: Path, secret_files: Iterable[Path] = ()
) -> tuple[DiscoveryPolicy, dict[str, Obj]]:
    """The one DiscoveryPolicy of ``policy_file`` and every Secret of all files, by name."""
    docs = _documents(policy_file)
    extra = [d for f in secret_files for d in _documents(f)]
    policies = [d for d in docs if d.get("kind") == "DiscoveryPolicy"]
    if len(policies) != 1:
        raise InputError(f"{policy_file} must contain exactly one DiscoveryPolicy, found {len(policies)}")
    try:
        policy = DiscoveryPolicy.from_obj(policies[0])
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'policy'}: {e['msg']}"
            for e in err.errors(include_url=False)
        )
        raise InputError(f"{policy_file}: invalid DiscoveryPolicy: {problems}") from None
    secrets: dict[str, Obj] = {}
    for doc in [*docs, *extra]:
        if doc.get("kind") == "Secret":
            name = str((doc.get("metadata") or {}).get("name") or "")
            if name:
                secrets[name] = doc
    return policy, secrets


async def discover(policy: DiscoveryPolicy, secrets: Mapping[str, Obj]) -> SyncOutcome:
    """One full sync of ``policy`` with Secrets from ``secrets``: the reconciler's code path."""

    async def credentials_for(source: DiscoverySource) -> Credentials | None:
        if source.secret_ref is None:
            return None
        secret = secrets.get(source.secret_ref.name)
        if secret is None:
            raise SecretError(
                SECRET_NOT_FOUND,
                f"Secret {source.secret_ref.name} is not in the policy file or any --secret-file",
            )
        return credentials_from_secret(secret)

    spec = policy.spec
    try:
        image_filter = compile_filter(spec)
        filter_error = None
    except InvalidImageFilterError as err:
        image_filter, filter_error = None, err.message
    outcomes = {} if filter_error else await run_sources(spec, credentials_for, token_cache=TokenCache())
    return apply_outcomes(
        spec=spec,
        generation=policy.metadata.generation,
        previous=DiscoveryPolicyStatus(),
        outcomes=outcomes,
        image_filter=image_filter,
        image_filter_error=filter_error,
        full=True,
        now=utcnow(),
    )


def _report(policy: DiscoveryPolicy, outcome: SyncOutcome) -> Obj:
    status = outcome.status.to_json()
    runs = {
        name: {"durationSeconds": round(run.duration, 3), "warnings": list(run.warnings)}
        for name, run in outcome.runs.items()
    }
    for entry in status.get("sources", []):
        entry.update(runs.get(entry["name"], {}))
    return {"name": policy.metadata.name, "status": status}


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _score(value: float) -> str:
    return f"{value:g}"


def render(policy: DiscoveryPolicy, outcome: SyncOutcome, fmt: str, out: TextIO) -> None:
    """Write the result as ``table`` (for people), ``json`` or ``yaml`` (the status the operator writes)."""
    if fmt == "json":
        json.dump(_report(policy, outcome), out, indent=2)
        out.write("\n")
        return
    if fmt == "yaml":
        yaml.safe_dump(_report(policy, outcome), out, sort_keys=False, allow_unicode=True)
        return
    status = outcome.status
    rows = [["SOURCE", "TYPE", "HEALTH", "IMAGES", "TIME", "DETAIL"]]
    for entry in status.sources:
        run = outcome.runs.get(entry.name)
        if is_partial(entry):
            rows.append(
                [
                    entry.name,
                    entry.type,
                    "PARTIAL",
                    str(entry.images_found),
                    f"{run.duration:.2f}s" if run else "-",
                    f"{entry.reason}: {entry.last_error}",
                ]
            )
        elif entry.healthy:
            detail = ", ".join(f"{d.reason}={d.count}" for d in entry.dropped)
            detail = f"dropped {detail}" if detail else ""
            if run is not None and run.warnings:
                detail = "; ".join([*([detail] if detail else []), *run.warnings])
            rows.append(
                [
                    entry.name,
                    entry.type,
                    "ok",
                    str(entry.images_found),
                    f"{run.duration:.2f}s" if run else "-",
                    detail,
                ]
            )
        else:
            detail = f"{entry.reason}: {entry.last_error}" if entry.reason else "not queried"
            rows.append(
                [
                    entry.name,
                    entry.type,
                    "FAILED" if entry.reason else "-",
                    "-",
                    f"{run.duration:.2f}s" if run else "-",
                    detail,
                ]
            )
    out.write(_table(rows) + "\n\n")
    if outcome.image_filter_error is not None:
        out.write(f"imageFilter unusable: {outcome.image_filter_error}\n")
        return
    if not status.discovered_images:
        out.write(
            "no images discovered\n" if not outcome.all_failed else "no source answered: nothing to rank\n"
        )
        return
    image_rows = [["RANK", "SCORE", "IMAGE", "SOURCES"]]
    for i, image in enumerate(status.discovered_images, 1):
        image_rows.append([str(i), _score(image.score), image.image, ",".join(image.sources)])
    out.write(_table(image_rows) + "\n")
    out.write(
        f"\ntotal: {status.image_count} images (topX {policy.spec.top_x}) at {format_time(status.last_sync_time)}\n"
    )


def main_discover(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Handler of ``drop-operator discover``."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        policy, secrets = load_inputs(Path(args.filename), [Path(p) for p in args.secret_file or ()])
    except InputError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_BAD_INPUT
    outcome = asyncio.run(discover(policy, secrets))
    render(policy, outcome, args.output, out)
    answered = any(run.answered for run in outcome.runs.values())
    return EXIT_OK if answered and outcome.image_filter_error is None else EXIT_NO_SOURCE

"""The platforms of each CachedImage's reference, resolved in the background and remembered.

A reconcile never waits for a registry: :meth:`PlatformResolver.lookup` answers from memory and, when
nothing is known yet (or a tag's answer is older than :data:`TAG_TTL`), starts one background
resolution per (reference, pull Secrets). Until the first answer arrives the lookup says
``None`` (pending) and the reconciler starts no pulls of that image; a later refresh keeps
answering with the previous result meanwhile.

Credentials are the ones the pull pods use: the image's ``imagePullSecrets`` in the operator's
namespace, ``kubernetes.io/dockerconfigjson`` (key ``.dockerconfigjson``), read on each resolution.
A missing or unreadable Secret means an anonymous request (the registry then says whether that is
enough).

A failure (unreachable registry, an HTTP error, a document that is not a manifest) is remembered
for :data:`FAILURE_TTL` as *unknown* platforms with the reason: the image then targets nodes by
labels only, as without this check. Platforms read for a digest never change, so they are kept per
digest (a tag that still points at the same digest costs a ``HEAD`` only).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from drop_operator.discovery.errors import SourceError
from drop_operator.discovery.http import Credentials
from drop_operator.discovery.platforms import Platform, docker_config_credentials, read_platforms
from drop_operator.discovery.registry import TokenCache
from drop_operator.imageref import InvalidReferenceError, parse
from drop_operator.runtime import ApiError, KubeClient
from drop_operator.runtime.logging import get_logger
from drop_operator.runtime.resources import SECRETS

__all__ = ["FAILURE_TTL", "LABELS_ONLY", "TAG_TTL", "KnownPlatforms", "PlatformResolver"]

log = get_logger(__name__)

TAG_TTL = 600.0
"""Seconds a tag's platforms are trusted before the registry is asked again (tags move)."""
FAILURE_TTL = 120.0
"""Seconds a failed resolution is remembered before the registry is asked again."""
REQUEST_TIMEOUT = 10.0
"""Seconds per registry request."""
MAX_ENTRIES = 4096
"""Bound of each memory (references, digests); the oldest entries go first."""
DOCKER_CONFIG_KEY = ".dockerconfigjson"

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class KnownPlatforms:
    """A resolution's outcome: ``platforms`` (``None``: unknown, target by labels only) and, when
    unknown, ``problem`` saying why."""

    platforms: frozenset[Platform] | None
    problem: str | None = None
    expires: float = 0.0


LABELS_ONLY = KnownPlatforms(None)
"""What the operator knows with platform lookups off: nothing, so nodes are targeted by labels."""


class PlatformResolver:
    """Background resolution of references to platforms, with the memory described above."""

    def __init__(self, client: KubeClient, namespace: str, *, clock: Callable[[], float]) -> None:
        self.client = client
        self.namespace = namespace
        self.clock = clock
        self.token_cache = TokenCache(clock)
        self.known: dict[tuple[str, tuple[str, ...]], KnownPlatforms] = {}
        self.by_digest: dict[str, frozenset[Platform]] = {}
        self.running: dict[tuple[str, tuple[str, ...]], asyncio.Task[None]] = {}

    def lookup(self, reference: str, secrets: Sequence[str]) -> KnownPlatforms | None:
        """What is known of ``reference`` pulled with ``secrets``; ``None`` while the first
        resolution runs. Starts a resolution when nothing or only an expired answer is known."""
        key = (reference, tuple(secrets))
        known = self.known.get(key)
        if (known is None or known.expires <= self.clock()) and key not in self.running:
            self.running[key] = asyncio.create_task(self._resolve(key), name=f"platforms {reference}")
        return known

    async def _resolve(self, key: tuple[str, tuple[str, ...]]) -> None:
        reference, secrets = key
        try:
            credentials = await self._credentials(reference, secrets)
            found = await read_platforms(
                reference,
                credentials,
                token_cache=self.token_cache,
                known=self.by_digest,
                request_timeout=REQUEST_TIMEOUT,
            )
        except SourceError as err:
            outcome = KnownPlatforms(None, f"{err.reason}: {err.message}", self.clock() + FAILURE_TTL)
        except Exception as err:  # a bug here must not stop pulls: fall back to labels
            log.exception("resolving platforms failed", reference=reference)
            outcome = KnownPlatforms(None, f"{type(err).__name__}: {err}", self.clock() + FAILURE_TTL)
        else:
            if found.digest is not None:
                _put(self.by_digest, found.digest, found.platforms)
            ttl = float("inf") if "@" in reference else TAG_TTL
            if found.platforms:
                outcome = KnownPlatforms(found.platforms, None, self.clock() + ttl)
            else:
                outcome = KnownPlatforms(None, "the registry names no platform", self.clock() + ttl)
        finally:
            self.running.pop(key, None)
        _put(self.known, key, outcome)
        log.debug(
            "platforms resolved",
            reference=reference,
            platforms=sorted(map(str, outcome.platforms or ())),
            problem=outcome.problem,
        )

    async def _credentials(self, reference: str, secrets: Sequence[str]) -> Credentials | None:
        """The first of ``secrets`` with credentials for the reference's registry, as the kubelet
        tries pull Secrets in order; ``None`` (anonymous) when none has any."""
        try:
            domain = parse(reference).domain
        except InvalidReferenceError:
            return None
        for name in secrets:
            try:
                secret = await self.client.get(SECRETS, name, self.namespace)
                raw = (secret.get("data") or {}).get(DOCKER_CONFIG_KEY)
                if not raw:
                    continue
                credentials = docker_config_credentials(base64.b64decode(raw, validate=True), domain)
            except (ApiError, SourceError, binascii.Error, ValueError) as err:
                # Never the value: only which Secret and what kind of problem.
                log.info("pull Secret unusable for platform lookup", secret=name, error=type(err).__name__)
                continue
            if credentials is not None:
                return credentials
        return None


def _put(memory: dict[K, V], key: K, value: V) -> None:
    memory.pop(key, None)
    memory[key] = value
    while len(memory) > MAX_ENTRIES:
        del memory[next(iter(memory))]

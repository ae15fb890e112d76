"""Platforms of references on a real registry (distribution 2.8): indexes, a single manifest,
token auth with pull-Secret credentials, digests already known, and failures."""

from __future__ import annotations

import base64
import json

import pytest

from devtools import sampleimages
from devtools.process import free_port
from drop_operator.discovery import Reason, SourceError, TokenCache
from drop_operator.discovery.platforms import Platform, docker_config_credentials, read_platforms
from tests.infra.registry import RegistryFactory

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


async def test_indexes_and_a_single_manifest(registry_server: RegistryFactory) -> None:
    reg = registry_server()
    multi = reg.push("samples/multi", ["1"], sampleimages.multi_platform())
    arm = reg.push("samples/arm", ["1"], sampleimages.arm64_only())
    single = reg.push("samples/single", ["1"], sampleimages.scratch())

    found = await read_platforms(f"{reg.host}/samples/multi:1")
    assert (found.digest, found.platforms) == (multi, {AMD64, ARM64})
    found = await read_platforms(f"{reg.host}/samples/arm:1")
    assert (found.digest, found.platforms) == (arm, {ARM64})
    # An image manifest names no platform: its config blob does.
    found = await read_platforms(f"{reg.host}/samples/single:1")
    assert (found.digest, found.platforms) == (single, {AMD64})
    # By digest, as a CachedImage with spec.digest names it.
    found = await read_platforms(f"{reg.host}/samples/arm@{arm}")
    assert (found.digest, found.platforms) == (arm, {ARM64})


async def test_a_known_digest_is_not_downloaded_again(registry_server: RegistryFactory) -> None:
    reg = registry_server()
    digest = reg.push("samples/multi", ["1"], sampleimages.multi_platform())
    remembered = frozenset({Platform("remembered", "answer")})
    # The HEAD's digest is in `known`: its platforms come from there, not from a GET.
    found = await read_platforms(f"{reg.host}/samples/multi:1", known={digest: remembered})
    assert found.platforms == remembered


async def test_private_registry_with_pull_secret_credentials(registry_server: RegistryFactory) -> None:
    reg = registry_server(auth="token", users={"puller": "pw"}, anonymous_pull=False)
    reg.push("team/arm", ["1"], sampleimages.arm64_only())
    auth = base64.b64encode(b"puller:pw").decode()
    config = json.dumps({"auths": {reg.host: {"auth": auth}}}).encode()
    credentials = docker_config_credentials(config, reg.host)
    assert credentials is not None
    cache = TokenCache()

    found = await read_platforms(f"{reg.host}/team/arm:1", credentials, token_cache=cache)
    assert found.platforms == {ARM64}
    assert reg.token_server is not None
    assert reg.token_server.requests[-1].account == "puller"

    with pytest.raises(SourceError) as err:  # anonymously, the registry refuses
        await read_platforms(f"{reg.host}/team/arm:1")
    assert err.value.reason is Reason.UNAUTHORIZED


async def test_failures_are_source_errors(registry_server: RegistryFactory) -> None:
    reg = registry_server()
    with pytest.raises(SourceError) as err:
        await read_platforms(f"{reg.host}/samples/absent:1")
    assert err.value.reason is Reason.NOT_FOUND
    with pytest.raises(SourceError) as err:
        await read_platforms(f"127.0.0.1:{free_port()}/samples/any:1", request_timeout=5)
    assert err.value.reason is Reason.CONNECTION_ERROR

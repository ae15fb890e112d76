"""RegistrySource against real registries (distribution 2.8 and v3), fakes only where they cannot."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from devtools.process import free_port
from drop_operator.discovery import (
    Credentials,
    Reason,
    RegistryConfig,
    RegistrySource,
    SourceCandidates,
    SourceError,
    TokenCache,
    rank,
)
from tests.component.discovery.conftest import ServeApp
from tests.infra.registry import RegistryFactory

HELPER = "gitlab-org/gitlab-runner/gitlab-runner-helper"
# Shaped like the real helper repository: arch-prefixed tags, bleeding builds, release candidates.
HELPER_TAGS = [
    "x86_64-v17.5.0", "x86_64-v17.10.1", "x86_64-bleeding", "arm64-v17.10.1", "alpine-v17.5.0",
    "alpine3.19-x86_64-v17.9.0", "ubuntu-x86_64-bleeding", "latest", "bleeding",
    "v16.11.4", "v17.5.0", "v17.6.0", "v17.7.1", "v17.8.3", "v17.9.0", "v17.10.0", "v17.10.0-rc1", "v17.10.1",
]  # fmt: skip
SEED_TEMPLATE = "registry.gitlab.com/{{ .Repository }}:x86_64-{{ .Tag }}"
EXPECTED = [
    f"registry.gitlab.com/{HELPER}:x86_64-{tag}"
    for tag in ("v17.10.1", "v17.10.0", "v17.9.0", "v17.8.3", "v17.7.1")
]


def _seed_config(**overrides: object) -> RegistryConfig:
    fields: dict[str, object] = {
        "repositories": [HELPER],
        "tag_filter": r"^v\d+\.\d+\.\d+$",
        "top_x": 5,
        "image_template": SEED_TEMPLATE,
    }
    fields.update(overrides)
    return RegistryConfig(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [2, 3])
async def test_seed_gitlab_example_over_token_auth(registry_server: RegistryFactory, version: int) -> None:
    reg = registry_server(auth="token", version=version)
    reg.push_tags(HELPER, HELPER_TAGS)
    assert reg.token_server is not None
    cache = TokenCache()
    source = RegistrySource(_seed_config(url=reg.url), token_cache=cache)
    result = await source.discover()
    assert [c.image for c in result.candidates] == EXPECTED
    assert [c.score for c in result.candidates] == [5.0, 4.0, 3.0, 2.0, 1.0]
    assert result.scanned == len(HELPER_TAGS)
    assert result.dropped == {"FilteredOut": len(HELPER_TAGS) - 8}

    # The policy level (topX 10) keeps exactly these five, in this order.
    ranking = rank([SourceCandidates("registry-0", result.candidates)], top_x=10)
    assert [i.image for i in ranking.images] == EXPECTED

    # Anonymous token flow, and the token is reused: a second sync asks the token server nothing.
    assert [r.account for r in reg.token_server.requests] == [None]
    assert reg.token_server.requests[0].scopes == [f"repository:{HELPER}:pull"]
    again = await RegistrySource(_seed_config(url=reg.url), token_cache=cache).discover()
    assert [c.image for c in again.candidates] == EXPECTED
    assert len(reg.token_server.requests) == 1


async def test_token_flow_with_basic_credentials(registry_server: RegistryFactory) -> None:
    reg = registry_server(auth="token", users={"reader": "pw"}, anonymous_pull=False)
    reg.push_tags("team/app", ["1.0.0", "1.1.0"])
    assert reg.token_server is not None
    config = RegistryConfig(reg.url, ["team/app"])
    result = await RegistrySource(config, Credentials(username="reader", password="pw")).discover()
    assert [c.image for c in result.candidates] == [
        f"{reg.host}/team/app:1.1.0",
        f"{reg.host}/team/app:1.0.0",
    ]
    assert reg.token_server.requests[-1].account == "reader"

    with pytest.raises(SourceError) as err:  # anonymous gets an empty grant: the registry refuses
        await RegistrySource(config).discover()
    assert err.value.reason is Reason.UNAUTHORIZED

    with pytest.raises(SourceError) as err:
        await RegistrySource(config, Credentials(username="reader", password="bad")).discover()
    assert err.value.reason is Reason.UNAUTHORIZED
    assert "token server rejected" in err.value.message


async def test_expired_token_is_renewed(registry_server: RegistryFactory) -> None:
    reg = registry_server(auth="token", token_expires_in=300)
    reg.push_image("team/app", "v1")
    assert reg.token_server is not None
    now = [0.0]
    cache = TokenCache(clock=lambda: now[0], margin=10)
    source = RegistrySource(RegistryConfig(reg.url, ["team/app"]), token_cache=cache)
    await source.discover()
    now[0] += 289  # still inside the lifetime minus the margin
    await source.discover()
    assert len(reg.token_server.requests) == 1
    now[0] += 2
    await source.discover()
    assert len(reg.token_server.requests) == 2


async def test_basic_auth_registry(registry_server: RegistryFactory) -> None:
    reg = registry_server(auth="basic", users={"reader": "pw"})
    reg.push_image("team/app", "v1")
    config = RegistryConfig(reg.url, ["team/app"])
    result = await RegistrySource(config, Credentials(username="reader", password="pw")).discover()
    assert [c.image for c in result.candidates] == [f"{reg.host}/team/app:v1"]

    with pytest.raises(SourceError) as err:
        await RegistrySource(config).discover()
    assert err.value.reason is Reason.UNAUTHORIZED and "no username/password" in err.value.message

    with pytest.raises(SourceError) as err:
        await RegistrySource(config, Credentials(username="reader", password="bad")).discover()
    assert err.value.reason is Reason.UNAUTHORIZED and "HTTP 401" in err.value.message


async def test_missing_repository_is_not_found(registry_server: RegistryFactory) -> None:
    reg = registry_server()
    reg.push_image("team/app", "v1")
    with pytest.raises(SourceError) as err:
        await RegistrySource(RegistryConfig(reg.url, ["team/app", "team/missing"])).discover()
    assert err.value.reason is Reason.NOT_FOUND
    assert "NAME_UNKNOWN" in err.value.message or "name unknown" in err.value.message


async def test_v3_real_pagination_and_max_scan(registry_server: RegistryFactory) -> None:
    reg = registry_server(version=3)
    tags = [f"1.{i}.0" for i in range(250)]
    reg.seed_tags("big/repo", tags)
    source = RegistrySource(RegistryConfig(reg.url, ["big/repo"], page_size=100, top_x=3))
    result = await source.discover()
    assert result.scanned == 250 and result.warnings == []
    assert [c.image for c in result.candidates] == [f"{reg.host}/big/repo:1.{i}.0" for i in (249, 248, 247)]

    bounded = await RegistrySource(
        RegistryConfig(reg.url, ["big/repo"], page_size=100, max_scan=120)
    ).discover()
    assert bounded.scanned == 120
    assert bounded.warnings == ["big/repo: stopped after maxScan=120 tags"]


async def test_tls_failure(registry_server: RegistryFactory) -> None:
    reg = registry_server(tls=True)
    reg.push_image("team/app", "v1")
    with pytest.raises(SourceError) as err:
        await RegistrySource(RegistryConfig(reg.url, ["team/app"])).discover()
    assert err.value.reason is Reason.TLS_ERROR
    assert reg.ca_pem is not None
    ok = await RegistrySource(
        RegistryConfig(reg.url, ["team/app"]), Credentials(ca_pem=reg.ca_pem.decode())
    ).discover()
    assert len(ok.candidates) == 1


async def test_catastrophic_tag_filter_is_bounded(registry_server: RegistryFactory) -> None:
    reg = registry_server()
    reg.push_tags("team/app", ["a" * 60 + "b", "v1"])
    source = RegistrySource(RegistryConfig(reg.url, ["team/app"], tag_filter="^(a|aa)+$"))
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(SourceError) as err:
        await source.discover()
    assert err.value.reason is Reason.INVALID_TAG_FILTER
    assert loop.time() - start < 3


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"tag_filter": "(unclosed"}, Reason.INVALID_TAG_FILTER),
        ({"version_pattern": "[z-a]"}, Reason.INVALID_VERSION_PATTERN),
        ({"image_template": "{{ .Tag "}, Reason.INVALID_TEMPLATE),
        ({"image_template": "{{ .Tag.__class__ }}"}, Reason.INVALID_TEMPLATE),
        ({"image_template": "{{ .Image }}"}, Reason.INVALID_TEMPLATE),
        ({"url": "registry.gitlab.com"}, Reason.INVALID_CONFIG),
        ({"repositories": ["Upper/Case"]}, Reason.INVALID_CONFIG),
        ({"repositories": []}, Reason.INVALID_CONFIG),
        ({"top_x": 0}, Reason.INVALID_CONFIG),
    ],
)
def test_invalid_configuration_fails_before_any_request(overrides: dict[str, object], reason: Reason) -> None:
    with pytest.raises(SourceError) as err:
        RegistrySource(_seed_config(**{"url": "https://registry.gitlab.com", **overrides}))
    assert err.value.reason is reason


async def test_registry_variable_is_the_host_never_a_url(registry_server: RegistryFactory) -> None:
    reg = registry_server()
    reg.push_image("team/app", "v1")
    config = RegistryConfig(
        reg.url + "/", ["team/app"], image_template="{{ .Registry }}/{{ .Repository }}:{{ .Tag }}"
    )
    result = await RegistrySource(config).discover()
    assert [c.image for c in result.candidates] == [f"{reg.host}/team/app:v1"]
    assert not reg.host.startswith("http")


async def test_version_pattern(registry_server: RegistryFactory) -> None:
    reg = registry_server()
    reg.push_tags("team/app", ["build-20240101-9", "build-20231231-12", "build-20240101-10"])
    config = RegistryConfig(reg.url, ["team/app"], version_pattern=r"^build-(?P<version>\d+-\d+)$")
    result = await RegistrySource(config).discover()
    assert [c.image.rsplit(":", 1)[1] for c in result.candidates] == [
        "build-20240101-10", "build-20240101-9", "build-20231231-12",
    ]  # fmt: skip


# --- fakes: what no real registry here does --------------------------------------------------


def _paging_fake(
    tags: list[str], hits: list[str], *, page: int = 3, ignore_n: bool = False
) -> web.Application:
    """Fake: opaque `Link` tokens (GHCR/Harbor style) or no paging at all despite `n`."""

    async def tags_list(request: web.Request) -> web.Response:
        hits.append(str(request.rel_url))
        if ignore_n:
            return web.json_response({"name": "x/y", "tags": tags})
        start = (
            int(bytes.fromhex(request.query.get("cursor", "30")).decode()) if "cursor" in request.query else 0
        )
        chunk = tags[start : start + page]
        headers = {}
        if start + page < len(tags):
            cursor = str(start + page).encode().hex()
            headers["Link"] = f'</v2/x/y/tags/list?cursor={cursor}&sig=a%2Cb>; rel="next"'
        return web.json_response({"name": "x/y", "tags": chunk}, headers=headers)

    app = web.Application()
    app.router.add_get("/v2/x/y/tags/list", tags_list)
    return app


async def test_opaque_link_tokens_are_followed_as_given(serve_app: ServeApp) -> None:
    tags = [f"v1.{i}.0" for i in range(8)]
    hits: list[str] = []
    url = await serve_app(_paging_fake(tags, hits))
    result = await RegistrySource(RegistryConfig(url, ["x/y"], page_size=3)).discover()
    assert result.scanned == 8
    assert [c.image.rsplit(":", 1)[1] for c in result.candidates][:2] == ["v1.7.0", "v1.6.0"]
    assert hits[0] == "/v2/x/y/tags/list?n=3"
    assert hits[1:] == [
        f"/v2/x/y/tags/list?cursor={b'3'.hex()}&sig=a%2Cb",
        f"/v2/x/y/tags/list?cursor={b'6'.hex()}&sig=a%2Cb",
    ]


async def test_server_ignoring_n_is_bounded_by_max_scan(serve_app: ServeApp) -> None:
    tags = [f"t{i}" for i in range(5000)]
    hits: list[str] = []
    url = await serve_app(_paging_fake(tags, hits, ignore_n=True))
    result = await RegistrySource(RegistryConfig(url, ["x/y"], page_size=10, max_scan=50)).discover()
    assert result.scanned == 50 and len(hits) == 1
    assert result.warnings == ["x/y: stopped after maxScan=50 tags"]


async def test_link_to_another_host_is_refused(serve_app: ServeApp) -> None:
    """Fake: a Link header pointing elsewhere (credentials must not follow it)."""

    async def tags_list(_: web.Request) -> web.Response:
        return web.json_response(
            {"name": "x/y", "tags": ["a"]},
            headers={"Link": '<http://elsewhere.invalid/v2/x/y/tags/list?p=2>; rel="next"'},
        )

    app = web.Application()
    app.router.add_get("/v2/x/y/tags/list", tags_list)
    url = await serve_app(app)
    with pytest.raises(SourceError) as err:
        await RegistrySource(RegistryConfig(url, ["x/y"])).discover()
    assert err.value.reason is Reason.INVALID_RESPONSE and "another host" in err.value.message


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (429, "slow down", Reason.RATE_LIMITED),
        (503, "maintenance", Reason.SERVER_ERROR),
        (403, '{"errors":[{"code":"DENIED"}]}', Reason.FORBIDDEN),
        (200, "<html>proxy login</html>", Reason.INVALID_RESPONSE),
        (200, '{"tags": "not a list"}', Reason.INVALID_RESPONSE),
    ],
)
async def test_bad_answers(serve_app: ServeApp, status: int, body: str, reason: Reason) -> None:
    """Fake: rate limits, outages, denials and garbage, which the real registry will not produce."""

    async def tags_list(_: web.Request) -> web.Response:
        return web.Response(status=status, text=body)

    app = web.Application()
    app.router.add_get("/v2/x/y/tags/list", tags_list)
    url = await serve_app(app)
    with pytest.raises(SourceError) as err:
        await RegistrySource(RegistryConfig(url, ["x/y"])).discover()
    assert err.value.reason is reason


async def test_huge_tag_list_and_stall(serve_app: ServeApp) -> None:
    """Fake: a multi-megabyte tag list, and a registry that never answers."""
    never = asyncio.Event()

    async def huge(_: web.Request) -> web.Response:
        return web.Response(text=json.dumps({"tags": ["t" * 100] * 50_000}), content_type="application/json")

    async def stall(_: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    app = web.Application()
    app.router.add_get("/v2/huge/r/tags/list", huge)
    app.router.add_get("/v2/stall/r/tags/list", stall)
    url = await serve_app(app)
    with pytest.raises(SourceError) as err:
        await RegistrySource(RegistryConfig(url, ["huge/r"], max_body_bytes=1_000_000)).discover()
    assert err.value.reason is Reason.TOO_LARGE
    with pytest.raises(SourceError) as err:
        await RegistrySource(RegistryConfig(url, ["stall/r"], timeout=0.5)).discover()
    assert err.value.reason is Reason.TIMEOUT


async def test_dns_failure_and_refused_connection() -> None:
    with pytest.raises(SourceError) as err:
        await RegistrySource(RegistryConfig("https://registry.invalid", ["a/b"], timeout=10)).discover()
    assert err.value.reason is Reason.DNS_ERROR
    with pytest.raises(SourceError) as err:
        await RegistrySource(RegistryConfig(f"http://127.0.0.1:{free_port()}", ["a/b"])).discover()
    assert err.value.reason is Reason.CONNECTION_ERROR

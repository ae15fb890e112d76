"""RegistrySource against real registries (distribution 2.8 and v3), fakes only where they cannot."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest
from aiohttp import web

from devtools.process import free_port
from drop_operator import preview
from drop_operator.api.discoverypolicy import (
    DiscoveryPolicy,
    DiscoveryPolicySpec,
    DiscoveryPolicyStatus,
    DiscoverySource,
)
from drop_operator.api.meta import find_condition, utcnow
from drop_operator.controllers.discoverypolicy.sync import apply_outcomes, run_sources
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
from tests.infra.hosts import MapHosts
from tests.infra.prometheus import PrometheusFactory, series_ending_now
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


async def test_missing_repository_fails_alone(registry_server: RegistryFactory) -> None:
    reg = registry_server()
    reg.push_tags("team/app", ["v1", "v2"])
    result = await RegistrySource(RegistryConfig(reg.url, ["team/app", "team/missing"])).discover()
    assert [c.image for c in result.candidates] == [f"{reg.host}/team/app:v2", f"{reg.host}/team/app:v1"]
    assert result.part_of == {c.image: "team/app" for c in result.candidates}
    assert list(result.failed_parts) == ["team/missing"] and result.parts == 2
    err = result.failed_parts["team/missing"]
    assert err.reason is Reason.NOT_FOUND
    assert "NAME_UNKNOWN" in err.message or "name unknown" in err.message

    # Every repository missing: the source fails as a whole, naming each.
    with pytest.raises(SourceError) as failed:
        await RegistrySource(RegistryConfig(reg.url, ["team/missing", "team/gone"])).discover()
    assert failed.value.reason is Reason.NOT_FOUND
    assert failed.value.message.startswith("all 2 repositories failed: team/missing: NotFound: ")
    assert "team/gone: NotFound" in failed.value.message
    with pytest.raises(SourceError) as failed:  # one repository: its own error, unchanged
        await RegistrySource(RegistryConfig(reg.url, ["team/missing"])).discover()
    assert failed.value.reason is Reason.NOT_FOUND and failed.value.message.startswith("HTTP 404")


async def test_a_deleted_repository_keeps_its_last_good_tags_while_the_others_move_on(
    registry_server: RegistryFactory,
) -> None:
    """The operator's own sync code (no cluster) over a real registry, across two syncs."""
    reg = registry_server()
    reg.push_tags("team/a", ["1.0.0"])
    reg.push_tags("team/b", ["2.0.0", "2.1.0"])
    reg.push_tags("team/c", ["3.0.0"])
    spec = DiscoveryPolicySpec.model_validate(
        {
            "topX": 10,
            "sources": [
                {
                    "type": "registry",
                    "name": "apps",
                    "registry": {"url": reg.url, "repositories": ["team/a", "team/b", "team/c"], "topX": 2},
                }
            ],
        }
    )

    async def no_secret(_: DiscoverySource) -> None:
        return None

    async def sync(previous: DiscoveryPolicyStatus) -> DiscoveryPolicyStatus:
        outcomes = await run_sources(spec, no_secret)
        return apply_outcomes(
            spec=spec,
            generation=1,
            previous=previous,
            outcomes=outcomes,
            image_filter=None,
            full=True,
            now=utcnow(),
        ).status

    first = await sync(DiscoveryPolicyStatus())
    assert {i.image for i in first.discovered_images} == {
        f"{reg.host}/team/a:1.0.0", f"{reg.host}/team/b:2.1.0", f"{reg.host}/team/b:2.0.0", f"{reg.host}/team/c:3.0.0",
    }  # fmt: skip

    # team/b is deleted from the registry (it now answers 404); team/a gets a new release.
    shutil.rmtree(reg.storage / "docker" / "registry" / "v2" / "repositories" / "team" / "b")
    reg.push_tags("team/a", ["1.1.0"])
    second = await sync(first)
    assert [(i.image, i.score) for i in second.discovered_images] == [
        (f"{reg.host}/team/a:1.1.0", 2.0),
        (f"{reg.host}/team/b:2.1.0", 2.0),  # kept from its last good answer
        (f"{reg.host}/team/c:3.0.0", 2.0),
        (f"{reg.host}/team/a:1.0.0", 1.0),
        (f"{reg.host}/team/b:2.0.0", 1.0),
    ]
    [entry] = second.sources
    assert (entry.healthy, entry.reason) == (False, "NotFound")
    assert entry.failing_repositories is not None
    assert [(r.name, r.reason) for r in entry.failing_repositories] == [("team/b", "NotFound")]
    assert entry.failing_repositories[0].last_success_time == first.sources[0].last_success_time
    ready = find_condition(second.conditions, "Ready")
    assert ready is not None and (ready.status, ready.reason) == ("True", "PartiallyDiscovered")


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


# --- tags written by CI and supply-chain tooling ----------------------------------------------

#: docker/metadata-action's defaults: semver aliases, the branch, and `sha-<short commit>`.
CI_TAGS = ["1", "1.3", "1.3.2", "1.4", "1.4.0", "latest", "main"]
CI_TAGS += ["sha-0a1b2c3", "sha-860c190", "sha-9b1e2f3", "sha-2024abc"]
DIGEST_TAG = "sha256-" + "0a1b2c3d4e5f6071" * 4


async def test_commit_tags_do_not_outrank_releases(registry_server: RegistryFactory) -> None:
    reg = registry_server()
    reg.push_tags("team/app", CI_TAGS)
    result = await RegistrySource(RegistryConfig(reg.url, ["team/app"], top_x=3)).discover()
    assert [c.image for c in result.candidates] == [
        f"{reg.host}/team/app:{t}" for t in ("1.4.0", "1.4", "1.3.2")
    ]


async def test_gitlab_helper_revision_tags_do_not_outrank_releases(registry_server: RegistryFactory) -> None:
    reg = registry_server()
    tags = ["x86_64-v17.3.2", "x86_64-v17.4.1", "x86_64-v17.5.0", "x86_64-58ba2b95", "x86_64-8fa89735"]
    tags += ["x86_64-ece86343", "x86_64-latest", "x86_64-bleeding"]
    reg.push_tags(HELPER, tags)
    config = RegistryConfig(reg.url, [HELPER], tag_filter="^x86_64-", top_x=3)
    result = await RegistrySource(config).discover()
    assert [c.image.rsplit(":", 1)[1] for c in result.candidates] == [
        "x86_64-v17.5.0", "x86_64-v17.4.1", "x86_64-v17.3.2",
    ]  # fmt: skip


@pytest.mark.parametrize(("top_x", "tag_filter"), [(1, None), (10, None), (10, ".")])
async def test_signatures_attestations_and_sboms_are_never_published(
    registry_server: RegistryFactory, top_x: int, tag_filter: str | None
) -> None:
    reg = registry_server()
    artifacts = [f"{DIGEST_TAG}.sig", f"{DIGEST_TAG}.att", f"{DIGEST_TAG}.sbom", DIGEST_TAG]
    reg.push_tags("team/app", ["1.0.0", "1.1.0", *artifacts])
    config = RegistryConfig(reg.url, ["team/app"], top_x=top_x, tag_filter=tag_filter)
    result = await RegistrySource(config).discover()
    assert [c.image for c in result.candidates] == [f"{reg.host}/team/app:{t}" for t in ("1.1.0", "1.0.0")][
        :top_x
    ]
    assert result.dropped["ArtifactTag"] == 4
    assert result.scanned == 6


# --- the registry's API host is not the image's registry name ---------------------------------

DOCKER_HUB_API_HOSTS = ["registry-1.docker.io", "index.docker.io", "registry.hub.docker.com"]


@pytest.mark.parametrize("url", [f"https://{h}" for h in DOCKER_HUB_API_HOSTS] + ["https://docker.io"])
async def test_docker_hub_api_hosts_name_images_docker_io(
    registry_server: RegistryFactory, map_hosts: MapHosts, url: str
) -> None:
    """A real registry standing for Docker Hub: only its API host names are mapped to it."""
    reg = registry_server(auth="token", tls=True, tls_names=DOCKER_HUB_API_HOSTS)
    reg.push_tags("library/nginx", ["1.27.3"])
    assert reg.ca_pem is not None
    port = int(reg.host.rsplit(":", 1)[1])
    # `docker.io` itself is not mapped: a source at https://docker.io must list at registry-1.docker.io.
    map_hosts({host: ("127.0.0.1", port) for host in DOCKER_HUB_API_HOSTS})
    creds = Credentials(ca_pem=reg.ca_pem.decode())
    plain = await RegistrySource(RegistryConfig(url, ["library/nginx"]), creds).discover()
    assert [c.image for c in plain.candidates] == ["docker.io/library/nginx:1.27.3"]
    templated = RegistryConfig(
        url, ["library/nginx"], image_template="{{ .Registry }}/{{ .Repository }}:{{ .Tag }}"
    )
    result = await RegistrySource(templated, creds).discover()
    assert [c.image for c in result.candidates] == ["docker.io/library/nginx:1.27.3"]


async def test_docker_hub_tags_and_pod_usage_merge_into_one_image(
    registry_server: RegistryFactory, prometheus_server: PrometheusFactory, map_hosts: MapHosts
) -> None:
    """`drop-operator discover`'s code path: a registry source at Docker Hub's API host and a
    Prometheus source that saw pods run `nginx:1.27.3` name one image, whose scores add up."""
    reg = registry_server(auth="token", tls=True, tls_names=DOCKER_HUB_API_HOSTS)
    reg.push_tags("library/nginx", ["1.27.3"])
    assert reg.ca_pem is not None
    map_hosts({"registry-1.docker.io": ("127.0.0.1", int(reg.host.rsplit(":", 1)[1]))})
    prom = prometheus_server(series_ending_now("pods", [({"image": "nginx:1.27.3"}, 40.0)]))
    policy = DiscoveryPolicy.model_validate(
        {
            "apiVersion": "drop.corewire.io/v1alpha1",
            "kind": "DiscoveryPolicy",
            "metadata": {"name": "nginx"},
            "spec": {
                "topX": 10,
                "sources": [
                    {
                        "type": "prometheus",
                        "name": "usage",
                        "prometheus": {"endpoint": prom.url, "query": "pods"},
                    },
                    {
                        "type": "registry",
                        "name": "hub",
                        # topX 2: the newest (and only) tag scores 2.
                        "registry": {
                            "url": "https://registry-1.docker.io",
                            "repositories": ["library/nginx"],
                            "topX": 2,
                        },
                        "secretRef": {"name": "hub-ca"},
                    },
                ],
            },
        }
    )
    secret = {"kind": "Secret", "metadata": {"name": "hub-ca"}, "stringData": {"ca.crt": reg.ca_pem.decode()}}
    outcome = await preview.discover(policy, {"hub-ca": secret})
    assert [(i.image, i.score, i.sources) for i in outcome.status.discovered_images] == [
        ("docker.io/library/nginx:1.27.3", 42.0, ["hub", "usage"])
    ]
    ready = find_condition(outcome.status.conditions, "Ready")
    assert ready is not None and (ready.status, ready.reason) == ("True", "Discovered")


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

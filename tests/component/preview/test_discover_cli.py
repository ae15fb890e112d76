"""``drop-operator discover`` as a user runs it, against a real Prometheus."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import yaml
from aiohttp import web

from devtools.tools import REPO_ROOT
from tests.component.discovery.conftest import ServeApp, serve_app
from tests.infra.prometheus import PrometheusFactory, series_ending_now

__all__ = ["serve_app"]  # the fixture, shared with the discovery component tests

SEED = REPO_ROOT / "tests" / "data" / "seed" / "popular-build-images.yaml"
SEED_ENDPOINT = "https://mimir.example.com"
ECR_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/tools/scanner:7"


def usage_data() -> list[object]:
    labels = {"container": "build", "namespace": "build-stuff", "cluster": "mycluster"}
    pods = {"registry.internal.test/ci/builder:1.4": 3, "node:20": 2, ECR_IMAGE: 4}
    series = [
        ({**labels, "pod": f"p{n}-{i}", "image": image}, 1e8)
        for n, (image, count) in enumerate(pods.items())
        for i in range(count)
    ]
    series.append(({**labels, "pod": "x", "image": "nginx:1.25", "namespace": "production"}, 1e8))
    return list(series_ending_now("container_memory_working_set_bytes", series))


def discover(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drop_operator", "discover", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO_ROOT,
    )


def test_seed_against_a_real_prometheus_prints_ranked_images(
    prometheus_server: PrometheusFactory, tmp_path: Path
) -> None:
    prometheus = prometheus_server(usage_data(), basic_auth=("admin", "my-prometheus-password"))
    policy = tmp_path / "policy.yaml"
    policy.write_text(SEED.read_text().replace(SEED_ENDPOINT, prometheus.url))

    table = discover("-f", str(policy))
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["SOURCE", "TYPE", "HEALTH", "IMAGES", "TIME", "DETAIL"]
    assert lines[1].split()[:4] == ["prometheus-0", "prometheus", "ok", "3"]
    assert "ExcludedByImageFilter=1" in lines[1]
    ranked = [line.split() for line in lines if line[:1].isdigit()]
    assert ranked == [
        ["1", "3", "registry.internal.test/ci/builder:1.4", "prometheus-0"],
        ["2", "2", "docker.io/library/node:20", "prometheus-0"],
    ]
    assert "my-prometheus-password" not in table.stdout + table.stderr

    as_json = discover("-f", str(policy), "-o", "json")
    assert as_json.returncode == 0
    status = json.loads(as_json.stdout)["status"]
    assert [(i["image"], i["score"]) for i in status["discoveredImages"]] == [
        ("registry.internal.test/ci/builder:1.4", 3.0),
        ("docker.io/library/node:20", 2.0),
    ]
    assert [c["reason"] for c in status["conditions"]] == ["Discovered", "AllSourcesHealthy"]

    as_yaml = yaml.safe_load(discover("-f", str(policy), "-o", "yaml").stdout)
    assert as_yaml["status"]["discoveredImages"] == status["discoveredImages"]


def test_verbatim_seed_exits_non_zero_naming_the_dns_failure() -> None:
    result = discover("-f", str(SEED))
    assert result.returncode == 1
    assert "DNSError: cannot resolve mimir.example.com" in result.stdout
    assert "no source answered" in result.stdout


def test_tls_and_basic_auth_from_a_secret_file_and_one_broken_source(
    prometheus_server: PrometheusFactory, tmp_path: Path
) -> None:
    prometheus = prometheus_server(usage_data(), basic_auth=("reader", "s3cret"), tls=True)
    assert prometheus.ca_pem is not None
    query = 'count(container_memory_working_set_bytes{namespace="build-stuff"}) by (image)'
    policy = {
        "apiVersion": "drop.corewire.io/v1alpha1",
        "kind": "DiscoveryPolicy",
        "metadata": {"name": "authoring"},
        "spec": {
            "topX": 1,
            "sources": [
                {
                    "type": "prometheus",
                    "name": "secured",
                    "prometheus": {"endpoint": prometheus.url, "query": query},
                    "secretRef": {"name": "prom-tls"},
                },
                {
                    "type": "prometheus",
                    "name": "down",
                    "prometheus": {"endpoint": "http://127.0.0.1:9", "query": query},
                },
            ],
        },
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "prom-tls", "namespace": "drop-system"},
        "stringData": {"username": "reader", "password": "s3cret", "ca.crt": prometheus.ca_pem.decode()},
    }
    (tmp_path / "secret.yaml").write_text(yaml.safe_dump(secret))
    result = discover(
        "-f", "-", "--secret-file", str(tmp_path / "secret.yaml"), "-o", "json", stdin=yaml.safe_dump(policy)
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)["status"]
    assert [i["image"] for i in status["discoveredImages"]] == [ECR_IMAGE]
    by_name = {s["name"]: s for s in status["sources"]}
    assert by_name["secured"]["healthy"] is True
    assert (by_name["down"]["healthy"], by_name["down"]["reason"]) == (False, "ConnectionError")

    without_secret = discover("-f", "-", "-o", "json", stdin=yaml.safe_dump(policy))
    assert without_secret.returncode == 1
    reasons = {s["name"]: s.get("reason") for s in json.loads(without_secret.stdout)["status"]["sources"]}
    assert reasons == {"secured": "SecretNotFound", "down": "ConnectionError"}


def test_invalid_policy_is_rejected_before_any_query(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SEED.read_text().replace("topX: 30", "topX: 0"))
    result = discover("-f", str(bad))
    assert result.returncode == 2
    assert "topX" in result.stderr.replace("top_x", "topX")
    assert result.stdout == ""


async def test_no_series_spelled_null_exits_zero_with_an_empty_ready_ranking(serve_app: ServeApp) -> None:
    """Fake: an older Prometheus / Thanos answering a query that matches nothing with `"result": null`."""

    async def handler(_: web.Request) -> web.Response:
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": None}})

    app = web.Application()
    app.router.add_route("*", "/api/v1/query", handler)
    url = await serve_app(app)
    policy = {
        "apiVersion": "drop.corewire.io/v1alpha1",
        "kind": "DiscoveryPolicy",
        "metadata": {"name": "quiet"},
        "spec": {"sources": [{"type": "prometheus", "prometheus": {"endpoint": url, "query": "m"}}]},
    }
    # The fake runs on this test's event loop: run the CLI without blocking it.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "drop_operator", "discover", "-f", "-", "-o", "json",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(yaml.safe_dump(policy).encode()), 120)
    assert proc.returncode == 0, err.decode()
    status = json.loads(out)["status"]
    assert status.get("discoveredImages", []) == [] and status["imageCount"] == 0
    [source] = status["sources"]
    assert source["healthy"] is True and "reason" not in source
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Ready", "True", "Discovered"),
        ("SourcesHealthy", "True", "AllSourcesHealthy"),
    ]

"""KubeClient against the real API server: verbs, content types, errors, paging."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from drop_operator.runtime import ApiError, KubeClient
from drop_operator.runtime.resources import CONFIG_MAPS, SERVICE_ACCOUNTS
from tests.integration.runtime.crd import TEST_RESOURCE, ensure_test_crd


def cm(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


async def test_crud_patch_types_and_errors(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(CONFIG_MAPS, cm("a", namespace, x="1", y="2"))
    assert created["metadata"]["uid"]
    with pytest.raises(ApiError) as exc:
        await kube.create(CONFIG_MAPS, cm("a", namespace))
    assert exc.value.already_exists and not exc.value.conflict

    patched = await kube.patch(CONFIG_MAPS, "a", {"data": {"x": "9", "y": None}}, namespace)
    assert patched["data"] == {"x": "9"}, "merge patch: None deletes the key"

    applied = await kube.apply(CONFIG_MAPS, cm("a", namespace, x="9", z="3"), field_manager="drop-test")
    assert applied["data"]["z"] == "3"
    managers = {m["manager"] for m in applied["metadata"]["managedFields"]}
    assert "drop-test" in managers

    stale = dict(created)
    with pytest.raises(ApiError) as exc:
        await kube.replace(CONFIG_MAPS, stale)
    assert exc.value.conflict and exc.value.status == 409

    with pytest.raises(ApiError) as exc:
        await kube.get(CONFIG_MAPS, "missing", namespace)
    assert exc.value.not_found

    assert await kube.delete(CONFIG_MAPS, "a", namespace) is True
    assert await kube.delete(CONFIG_MAPS, "a", namespace) is False
    assert (
        REGISTRY.get_sample_value("rest_client_requests_total", {"code": "409", "method": "POST"}) or 0
    ) >= 1


async def test_list_follows_pages_and_fills_kind(kube: KubeClient, namespace: str) -> None:
    for i in range(5):
        await kube.create(CONFIG_MAPS, cm(f"p{i}", namespace))
    items, rv = await kube.list(CONFIG_MAPS, namespace=namespace, page_size=2)
    names = sorted(i["metadata"]["name"] for i in items if i["metadata"]["name"].startswith("p"))
    assert names == [f"p{i}" for i in range(5)]
    assert rv.isdigit()
    assert all(i["kind"] == "ConfigMap" and i["apiVersion"] == "v1" for i in items)


@pytest.mark.parametrize(
    "value",
    [
        "a\x85b",  # NEL: a line break to YAML 1.1
        "x \u2028 y \u2029 z",  # line and paragraph separators
        "a\x7fb\x9f",  # DEL and a C1 control: outside YAML's printable set
        "\ufeffGrüße \u2013 日本語 🚀",  # a BOM, accents, CJK and a character beyond U+FFFF
    ],
)
async def test_apply_keeps_every_character(kube: KubeClient, namespace: str, value: str) -> None:
    """An apply patch is parsed as YAML; what JSON leaves raw must still come back unchanged."""
    applied = await kube.apply(CONFIG_MAPS, cm("chars", namespace, v=value), field_manager="drop-test")
    assert applied["data"]["v"] == value
    assert (await kube.get(CONFIG_MAPS, "chars", namespace))["data"]["v"] == value


async def test_custom_resource_status_and_apply(kube: KubeClient) -> None:
    await ensure_test_crd(kube)
    name = "cr-status"
    await kube.delete(TEST_RESOURCE, name)
    body = {"apiVersion": TEST_RESOURCE.api_version, "kind": TEST_RESOURCE.kind, "metadata": {"name": name}}
    created = await kube.apply(TEST_RESOURCE, {**body, "spec": {"size": 1}}, field_manager="drop-test")
    assert created["metadata"]["generation"] == 1
    with_status = await kube.patch_status(TEST_RESOURCE, name, {"status": {"phase": "Ready"}})
    assert with_status["status"] == {"phase": "Ready"}
    assert with_status["metadata"]["generation"] == 1, "status writes must not bump generation"
    applied = await kube.apply(
        TEST_RESOURCE, {**body, "status": {"phase": "Done"}}, field_manager="drop-test", status=True
    )
    assert applied["status"]["phase"] == "Done"
    assert await kube.delete(TEST_RESOURCE, name, propagation_policy="Foreground") is True


async def test_create_token_for_a_service_account(kube: KubeClient, namespace: str) -> None:
    await kube.create(
        SERVICE_ACCOUNTS,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": namespace}},
    )
    token = await kube.create_token(namespace, "sa", expiration_seconds=600)
    assert token.count(".") == 2

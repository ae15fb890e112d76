"""Runtime integration fixtures: the shared ``kube`` client plus small helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from drop_operator.runtime import KubeClient
from drop_operator.runtime.resources import NAMESPACES
from tests.infra.controlplane import unique_name


class Recorder:
    """Collects informer notifications as (kind, key, resourceVersion) tuples."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    @staticmethod
    def _id(obj: dict[str, Any]) -> tuple[str, str]:
        meta = obj["metadata"]
        return meta["name"], str(meta.get("resourceVersion", ""))

    def add(self, obj: dict[str, Any]) -> None:
        self.events.append(("add", *self._id(obj)))

    def update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.events.append(("update", *self._id(new)))

    def delete(self, obj: dict[str, Any]) -> None:
        self.events.append(("delete", *self._id(obj)))

    def of(self, kind: str) -> list[str]:
        return [name for k, name, _ in self.events if k == kind]


@pytest_asyncio.fixture
async def namespace(kube: KubeClient) -> AsyncIterator[str]:
    """A fresh namespace for the test, deleted afterwards."""
    name = unique_name("rt")
    await kube.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        await kube.delete(NAMESPACES, name)

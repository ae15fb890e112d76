"""A connected :class:`KubeClient` for the session's control plane."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from devtools.localcluster import LocalCluster
from drop_operator.runtime import KubeClient


@pytest_asyncio.fixture
async def kube(control_plane: LocalCluster) -> AsyncIterator[KubeClient]:
    """Admin client with short timeouts, closed after the test."""
    client = await KubeClient.connect(str(control_plane.kubeconfig), connect_timeout=5, read_timeout=30)
    try:
        yield client
    finally:
        await client.close()

"""One or more reconcilers running in-process in a Manager of their own, against the real cluster.

Integration tests start and stop it at will (a restart is ``stop()`` then ``start()``), with leader
election and the probe/metrics servers off, and a short informer resync so that resyncs happen
during a test's observation window.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, Protocol, TypeVar

import pytest_asyncio

from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime import KubeClient, Manager
from tests.infra.waiting import eventually

R = TypeVar("R")


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)

Obj = dict[str, Any]


class InProcessOperator(Generic[R]):
    """``setup(manager, settings)`` of a reconciler module, run in a fresh Manager per start."""

    def __init__(
        self,
        client: KubeClient,
        setup: Callable[[Manager, OperatorSettings], R],
        settings: OperatorSettings,
        *,
        resync_period: float | None = None,
        grace_period: float = 5.0,
    ) -> None:
        self.client = client
        self.setup = setup
        self.settings = settings
        self.resync_period = resync_period
        self.grace_period = grace_period
        self.manager: Manager | None = None
        self.reconciler: R | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        options: dict[str, Any] = {} if self.resync_period is None else {"resync_period": self.resync_period}
        self.manager = Manager(
            self.client,
            namespace=self.settings.namespace,
            leader_election=False,
            metrics_addr="0",
            probe_addr="0",
            grace_period=self.grace_period,
            **options,
        )
        self.reconciler = self.setup(self.manager, self.settings)
        self.started(self.manager)
        self._task = asyncio.get_running_loop().create_task(self.manager.run())
        manager = self.manager
        await eventually(lambda: manager.started_controllers, 30, "operator started")

    def started(self, manager: Manager) -> None:
        """Hook for subclasses: add test handlers to the manager's informers before it runs."""

    async def stop(self) -> None:
        if self.manager is not None and self._task is not None:
            self.manager.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, self.grace_period + 30)
        self._task = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()


def condition(status: Obj, type_: str) -> Obj:
    """The condition of that type in a status (a copy), or ``{}``."""
    for cond in status.get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def running_fixture(name: str, make: Callable[..., S]) -> Any:
    """A fixture ``name`` that makes something with ``start()``/``stop()`` (an
    :class:`InProcessOperator`, a :class:`~tests.infra.podwatch.PodWatch`), starts it, yields it
    and stops it, also when the test fails.

    ``make``'s parameters are the fixtures it needs, by name, as in any fixture::

        operator = running_fixture("operator", lambda kube, env: Operator(kube, env.namespace))
    """

    async def fixture(**needs: Any) -> AsyncIterator[S]:
        thing = make(**needs)
        await thing.start()
        try:
            yield thing
        finally:
            await thing.stop()

    fixture.__signature__ = inspect.signature(make)  # type: ignore[attr-defined]  # pytest reads it
    fixture.__name__ = name
    return pytest_asyncio.fixture(fixture, name=name)

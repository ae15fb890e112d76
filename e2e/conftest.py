"""The e2e session: one environment (local control plane, or the cluster in ``$KUBECONFIG`` when
``DROP_E2E_CLUSTER`` is set) shared by every scenario, and the operator's log on every failure.

Scenarios run in file order and build on each other the way a user would: the documentation's
policies first, then a source outage, then the uninstall (which must come last).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from devtools import examples
from devtools.tools import ToolMissingError
from e2e.environment import Environment, Settings
from e2e.incluster import ClusterEnvironment
from e2e.kube import PodWatch
from e2e.local import LocalEnvironment
from e2e.scenario import FAST_PULLS, PULL_POD_SELECTOR

_ENV: list[Environment] = []


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    settings = Settings.from_env()
    started = time.monotonic()
    try:
        if settings.cluster:
            environment: Environment = ClusterEnvironment.start(settings, tmp_path_factory.mktemp("e2e"))
        else:
            environment = LocalEnvironment.start(settings, tmp_path_factory.mktemp("e2e"))
    except ToolMissingError as err:
        pytest.fail(str(err), pytrace=False)
    print(f"\ne2e environment ({settings.cluster or 'local'}) ready in {time.monotonic() - started:.1f}s")
    _ENV.append(environment)
    try:
        yield environment
    finally:
        _ENV.remove(environment)
        environment.close()


@pytest.fixture(scope="session")
def pull_pods(env: Environment) -> Iterator[PodWatch]:
    """Every pull pod the operator creates from now on (they are gone again once they succeed)."""
    with PodWatch(env.kubectl, env.namespace, PULL_POD_SELECTOR) as watch:
        yield watch


@pytest.fixture(scope="session")
def applied(env: Environment, pull_pods: PodWatch) -> None:
    """The examples, applied the way the examples' README says."""
    pull_policy = examples.load(examples.PULL_POLICY_FILE)
    for doc in pull_policy:
        doc["spec"].update(FAST_PULLS)
    docs: list[dict[str, Any]] = [*pull_policy]
    for name in examples.POLICY_FILES:
        docs += examples.localize(
            examples.load(name), prometheus=env.prometheus_url, registry=env.registry_url
        )
    for name in examples.SET_FILES:
        docs += examples.load(name)
    env.kubectl.apply(docs)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _ENV:
        report.sections.append(("drop-operator log (last lines)", _ENV[0].operator_log()))
    return report

"""The e2e session: one environment per mode (``e2e/environment.py``: local, in-cluster local, or
the cluster in ``$KUBECONFIG`` when ``DROP_E2E_CLUSTER`` is set), each shared by every scenario,
and the operator's log on every failure.

The ``env`` fixture is parametrized by mode, so pytest runs every scenario against one mode's
environment, stops it, then starts the next one. Within a mode, scenarios run in file order and
build on each other the way a user would: the documentation's policies first, then a source
outage, then the uninstall (which must come last).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import examples
from devtools.tools import ToolMissingError
from e2e.environment import Environment, Settings
from e2e.incluster import ClusterEnvironment
from e2e.incluster_local import InClusterLocalEnvironment
from e2e.kube import PodWatch
from e2e.local import LocalEnvironment
from e2e.scenario import FAST_PULLS, PULL_POD_SELECTOR

_ENV: list[Environment] = []
SETTINGS = Settings.from_env()
ENVIRONMENTS: dict[str, type[LocalEnvironment] | type[ClusterEnvironment]] = {
    "local": LocalEnvironment,
    "incluster-local": InClusterLocalEnvironment,
    "cluster": ClusterEnvironment,
}


@pytest.fixture(scope="session", params=SETTINGS.modes)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    mode: str = request.param
    # A short directory name: the kubelet's unix sockets live below it (at most 107 bytes).
    started = time.monotonic()
    try:
        environment: Environment = ENVIRONMENTS[mode].start(SETTINGS, tmp_path_factory.mktemp("e2e"))
    except ToolMissingError as err:
        pytest.fail(str(err), pytrace=False)
    laps = getattr(environment, "timings", None) or ""
    print(f"\ne2e environment ({mode}) ready in {time.monotonic() - started:.1f}s {laps}")
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


# The first scenario of each mode also starts its environment (cluster, image, chart, operator):
# longer than the per-test limit when the operator image must be rebuilt.
SETUP_TIMEOUT = 900


@pytest.hookimpl(trylast=True)  # after pytest has grouped the items by mode
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The hook sees the whole session's items (``pytest tests e2e``): only this directory's
    # scenarios are parametrized by mode, and other tests may have an "env" parameter of their own.
    here = Path(__file__).parent
    started: set[str] = set()
    for item in items:
        if here not in item.path.parents:
            continue
        callspec = getattr(item, "callspec", None)
        mode = callspec.params.get("env") if callspec is not None else None
        if isinstance(mode, str) and mode not in started:
            started.add(mode)
            item.add_marker(pytest.mark.timeout(SETUP_TIMEOUT))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _ENV:
        report.sections.append(("drop-operator log (last lines)", _ENV[0].operator_log()))
    return report

"""Fixtures for real servers, shared by every test folder."""

pytest_plugins = [
    "tests.infra.controlplane",
    "tests.infra.hosts",
    "tests.infra.image",
    "tests.infra.kube",
    "tests.infra.prometheus",
    "tests.infra.registry",
]

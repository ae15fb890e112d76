"""Each command loads what it runs and nothing else (imports are most of an idle operator's memory).

Every check runs in a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.infra.imports import RUN_IMPORTS

ROOT = Path(__file__).resolve().parents[2]


def loaded_after(code: str) -> set[str]:
    """Module names loaded by a fresh interpreter after running ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def tops(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_the_cli_alone_loads_no_runtime_no_controller_and_no_dependency() -> None:
    loaded = loaded_after("import drop_operator.cli")
    assert not tops(loaded) & {
        "kubernetes_asyncio",
        "aiohttp",
        "orjson",
        "pydantic",
        "structlog",
        "yaml",
        "jinja2",
        "regex",
    }
    assert not {
        m for m in loaded if m.startswith(("drop_operator.runtime", "drop_operator.controllers."))
    } - {"drop_operator.controllers.settings"}


def test_run_loads_no_template_engine_no_regex_no_yaml_and_no_kubernetes_models() -> None:
    loaded = loaded_after(f"for m in {RUN_IMPORTS!r}: __import__(m)")
    assert not tops(loaded) & {"jinja2", "regex", "yaml", "kubernetes_asyncio"}
    assert "drop_operator.preview" not in loaded


def test_connecting_loads_the_transport_and_config_loaders_but_not_the_generated_models() -> None:
    loaded = loaded_after(
        "from drop_operator.runtime import kubelib\n"
        "api_client, configuration, config = kubelib.load()\n"
        "assert api_client.__name__ == 'ApiClient' and configuration.__name__ == 'Configuration'\n"
        "assert callable(config.load_kube_config) and callable(config.load_incluster_config)"
    )
    assert {"kubernetes_asyncio.client.api_client", "kubernetes_asyncio.config.kube_config"} <= loaded
    assert not {
        m
        for m in loaded
        if m.startswith(("kubernetes_asyncio.client.models.", "kubernetes_asyncio.client.api."))
    }


def test_the_whole_library_still_loads_on_demand_after_the_lean_path() -> None:
    loaded = loaded_after(
        "from drop_operator.runtime import kubelib\n"
        "kubelib.load()\n"
        "import kubernetes_asyncio\n"
        "from kubernetes_asyncio.client import CoreV1Api, V1Pod\n"
        "from kubernetes_asyncio.client.models import V1Node\n"
        "assert kubernetes_asyncio.client.V1Pod is V1Pod and V1Node.__name__ == 'V1Node'\n"
        "assert kubernetes_asyncio.__version__ and CoreV1Api.__name__ == 'CoreV1Api'"
    )
    assert "kubernetes_asyncio.client.models.v1_pod" in loaded


def test_templates_and_patterns_load_their_engines_when_first_used() -> None:
    loaded = loaded_after(
        "from drop_operator.discovery.template import ImageTemplate\n"
        "from drop_operator.discovery.patterns import BoundedPattern\n"
        "import sys\n"
        "assert 'jinja2' not in sys.modules and 'regex' not in sys.modules\n"
        "assert ImageTemplate('{{ .Registry }}/x:{{ .Tag }}').render({'Registry': 'r', 'Tag': 't'}) == 'r/x:t'\n"
        "assert BoundedPattern('^v(?!0)', what='p', error_factory=ValueError).search('v1')"
    )
    assert {"jinja2", "regex"} <= tops(loaded)

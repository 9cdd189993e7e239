"""The Kubernetes manifests (deploy/kubernetes/, kustomize) validate against the Kubernetes
schemas offline, and wire kassa as the rules and the board expect: pod names as static group
member ids, probes on /healthz and /health, resources, secrets as files, a PodMonitor whose
jobs are the ones the alert rules read."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from common.settings import ENV_PREFIX, Settings
from common.settings.secrets import FILE_SUFFIX, secret_fields
from tests.operating.prometheus import PrometheusServer, deploy_file

KUSTOMIZATION = deploy_file("kubernetes")
SCHEMA_VERSION = kubernetes_validate.latest_version()


def _rendered() -> list[dict[str, Any]]:
    """The manifests as ``kubectl kustomize`` renders them (the files as they are when the
    machine has no kubectl, generated ConfigMap left out)."""
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        result = subprocess.run(
            [kubectl, "kustomize", str(KUSTOMIZATION)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    kustomization = yaml.safe_load((KUSTOMIZATION / "kustomization.yaml").read_text())
    return [
        doc
        for name in kustomization["resources"]
        for doc in yaml.safe_load_all((KUSTOMIZATION / name).read_text())
        if doc
    ]


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> the rendered object."""
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in _rendered()}


def _containers(manifests: dict[tuple[str, str], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: workload["spec"]["template"]["spec"]["containers"][0]
        for (kind, name), workload in manifests.items()
        if kind in ("StatefulSet", "Deployment")
    }


def test_every_manifest_validates_against_the_kubernetes_schemas(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    checked = 0
    for doc in manifests.values():
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD's schema ships with the Prometheus Operator, not Kubernetes
        kubernetes_validate.validate(doc, SCHEMA_VERSION, strict=True)
        checked += 1
    assert checked >= 7
    assert {kind for kind, _ in manifests} >= {
        "StatefulSet", "Deployment", "Service", "ConfigMap", "PersistentVolumeClaim", "PodMonitor"
    }  # fmt: skip


def test_the_stream_job_is_a_statefulset_whose_pod_names_are_static_member_ids(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    stream = manifests["StatefulSet", "kassa-stream"]
    env = {
        item["name"]: item for item in stream["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["KASSA_STREAM_INSTANCE_ID"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.name"}
    }
    assert env["KASSA_STREAM_STATIC_MEMBERSHIP"]["value"] == "true"
    scheduler = manifests["Deployment", "kassa-scheduler"]["spec"]
    assert (scheduler["replicas"], scheduler["strategy"]["type"]) == (1, "Recreate")


def test_probes_resources_and_secrets_as_files(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    containers = _containers(manifests)
    readiness = {name: c["readinessProbe"]["httpGet"]["path"] for name, c in containers.items()}
    assert readiness == {
        "kassa-stream": "/healthz", "kassa-scheduler": "/healthz", "kassa-api": "/health"
    }  # fmt: skip
    for name, container in containers.items():
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert "memory" in container["resources"]["limits"], name
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = manifests[_kind(name), name]["spec"]["template"]["spec"]["volumes"]
        secret_volumes = {v["name"] for v in volumes if "secret" in v}
        assert mounts["/run/secrets/kassa"] in secret_volumes, name
    settings = next(doc for (kind, _), doc in manifests.items() if kind == "ConfigMap")["data"]
    files = {key: value for key, value in settings.items() if key.endswith(FILE_SUFFIX)}
    assert files and all(path.startswith("/run/secrets/kassa/") for path in files.values())
    known = {ENV_PREFIX + field.upper() for field in Settings.model_fields}
    known |= {ENV_PREFIX + field.upper() + FILE_SUFFIX for field in secret_fields(Settings)}
    assert set(settings) - known == set(), "not kassa settings (renamed?)"
    assert not {ENV_PREFIX + f.upper() for f in secret_fields(Settings)} & set(settings)


def _kind(name: str) -> str:
    return "StatefulSet" if name == "kassa-stream" else "Deployment"


def test_the_podmonitors_scrape_every_pod_as_the_jobs_the_rules_read(
    manifests: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    jobs = set(PrometheusServer(tmp_path).jobs)  # deploy/prometheus/prometheus.yml's
    scraped: set[str] = set()
    for (kind, _), monitor in manifests.items():
        if kind != "PodMonitor":
            continue
        spec = monitor["spec"]
        assert spec["jobLabel"] == "app.kubernetes.io/name"
        ports = {endpoint["port"] for endpoint in spec["podMetricsEndpoints"]}
        for (workload_kind, name), workload in manifests.items():
            if workload_kind not in ("StatefulSet", "Deployment"):
                continue
            labels = workload["spec"]["template"]["metadata"]["labels"]
            if _selects(spec["selector"], labels):
                job = labels[spec["jobLabel"]]
                container = workload["spec"]["template"]["spec"]["containers"][0]
                assert ports <= {port["name"] for port in container["ports"]}, name
                scraped.add(job)
    assert scraped == jobs


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    matches = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        matches = matches and labels.get(expression["key"]) in expression["values"]
    return matches

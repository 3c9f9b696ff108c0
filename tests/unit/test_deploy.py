"""The deployable shape, checked without Docker or a cluster: the Kubernetes overlays render with
kustomize and validate against the Kubernetes schemas; the compose file and Dockerfile hold together."""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.31.0"


def built_tool(script: str) -> str:
    """The path of a tool a local script builds into the cache (kustomize, compose-check)."""
    out = subprocess.run(
        ["bash", str(ROOT / "deploy/local" / script)], capture_output=True, text=True, timeout=600, check=False
    )
    if out.returncode != 0 or not out.stdout.strip():
        pytest.skip(f"{script} could not build its tool: {out.stderr[-300:]}")
    return out.stdout.strip().splitlines()[-1]


def kustomize() -> str:
    return built_tool("kustomize.sh")


@pytest.fixture(scope="module", params=["dev", "prod"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    out = subprocess.run(
        [kustomize(), "build", str(ROOT / "k8s/overlays" / request.param)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def production_partitions() -> int:
    """The partitions per topic the production configuration sets (k8s/base/config.yaml)."""
    config = yaml.safe_load((ROOT / "k8s" / "base" / "config.yaml").read_text())
    return int(config["data"]["PROACT_TOPIC_PARTITIONS"])


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return doc["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_every_manifest_validates_against_kubernetes(rendered: list[dict[str, Any]]) -> None:
    for doc in rendered:
        if doc["apiVersion"].startswith("keda.sh/"):
            # never more consumers than partitions
            assert doc["spec"]["maxReplicaCount"] <= production_partitions()
            continue
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):  # the Prometheus Operator's: test_monitoring.py
            assert doc["kind"] in ("PodMonitor", "ServiceMonitor", "PrometheusRule")
            continue
        if doc["apiVersion"].startswith("kafka.strimzi.io/"):  # no schema shipped for Strimzi's resources
            assert doc["kind"] == "KafkaTopic"
            assert doc["spec"]["partitions"] == production_partitions()  # the setting the services read
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_workloads_follow_pod_hygiene(rendered: list[dict[str, Any]]) -> None:
    workloads = [d for d in rendered if d["kind"] in ("Deployment", "StatefulSet", "CronJob")]
    assert {d["metadata"]["name"] for d in workloads} == {
        "storefront",
        "admin",
        "engine",
        "projector",
        "dispatcher",
        "trainer",
        "otel-collector",
    }
    for doc in workloads:
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        (container,) = spec["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]
        scratch = "/tmp"  # noqa: S108 - the pod's own emptyDir, the only writable path
        assert any(m["mountPath"] == scratch for m in container["volumeMounts"])
        if container["name"] == "otel-collector":
            continue  # not one of proact's own images: the checks below are about proact's services
        secret_refs = [e for e in container.get("env", []) if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]]
        # credentials only from the Secret: MongoDB everywhere, and each service's own secrets
        own = {
            "dispatcher": ["PROACT_SMTP_PASSWORD", "PROACT_UNSUBSCRIBE_SECRET"],
            "storefront": ["PROACT_UNSUBSCRIBE_SECRET", "PROACT_STOREFRONT_IDENTITY_SECRET"],
            "admin": ["PROACT_SMTP_PASSWORD"],
        }
        assert [e["name"] for e in secret_refs] == ["PROACT_MONGO_URL", *own.get(container["name"], [])]
        if doc["kind"] != "CronJob":
            assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
            assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
            (module,) = container["args"]
            assert importlib.util.find_spec(module) is not None, module


def test_the_engine_has_stable_member_ids(rendered: list[dict[str, Any]]) -> None:
    (engine,) = [d for d in rendered if d["metadata"]["name"] == "engine" and d["kind"] == "StatefulSet"]
    env = {e["name"]: e for e in pod_spec(engine)["containers"][0]["env"]}
    assert env["PROACT_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def compose_check() -> str:
    return built_tool("compose-check.sh")


def test_compose_loads_as_docker_compose_would(tmp_path: Path) -> None:
    """compose-go (the loader Docker Compose uses) accepts the file: the specification's schema,
    references between services, volumes. A broken reference is refused, so the check can fail."""
    checker = compose_check()
    path = ROOT / "deploy/compose/docker-compose.yaml"
    loaded = subprocess.run([checker, str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert loaded.returncode == 0, loaded.stderr
    assert {"engine", "demo-shop", "mailpit", "models-init", "secrets-init"} <= set(loaded.stdout.split())
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(path.read_text().replace("condition: service_healthy", "condition: service_sleepy", 1))
    refused = subprocess.run([checker, str(broken)], capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0


def test_compose_runs_the_whole_demo() -> None:
    compose = yaml.safe_load((ROOT / "deploy/compose/docker-compose.yaml").read_text())
    services = compose["services"]
    assert {"kafka", "mongo", "otel-collector", "jaeger", "mailpit"} <= services.keys()
    proact = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("proact")}
    expected = {"engine", "projector", "dispatcher", "storefront", "admin", "kafka-init", "models-init", "demo-shop"}
    assert expected <= proact.keys()
    catalogue = {line.split()[1] for line in _catalogue()}
    for name, service in proact.items():
        command = " ".join(service["command"]) if isinstance(service["command"], list) else service["command"]
        modules = {w for w in command.replace(";", " ").split() if w.startswith(("services.", "shared."))}
        assert all(importlib.util.find_spec(m) is not None for m in modules), name
        if name in {"engine", "projector", "dispatcher", "storefront", "admin"}:
            assert f"services.{name}" in catalogue
            assert f"services.{name}" in command, name
            env = service.get("environment", {})
            assert env.get("PROACT_KAFKA_BOOTSTRAP_SERVERS") == "kafka:9092", name
    # both default models are trained, by the trainer's image
    models = " ".join(proact["models-init"]["command"])
    assert "train intent" in models
    assert "train churn" in models
    assert proact["models-init"]["build"]["args"]["EXTRAS"] == "trainer"
    # e-mail goes to the SMTP catcher, and the demo shop reaches the storefront by its service name
    assert services["dispatcher"]["environment"]["PROACT_SMTP_HOST"] == "mailpit"
    assert "--storefront-url http://storefront:8080" in " ".join(services["demo-shop"]["command"])
    assert services["engine"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    # one collector version, the one k8s/ runs
    k8s_collector = re.search(
        r"image: (otel/opentelemetry-collector-contrib:\S+)", _read("k8s/base/otel-collector.yaml")
    )
    assert k8s_collector is not None
    assert services["otel-collector"]["image"] == k8s_collector.group(1)
    assert (ROOT / "deploy/otel/collector.yaml").is_file()


def _read(path: str) -> str:
    return (ROOT / path).read_text()


def _catalogue() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "shared.catalogue"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.splitlines()


def test_the_image_is_multi_stage_locked_and_runs_as_non_root() -> None:
    lines = [line.strip() for line in _read("Dockerfile").splitlines()]
    assert sum(line.startswith("FROM ") for line in lines) == 2
    assert "USER 10001:10001" in lines
    assert 'ENTRYPOINT ["python", "-m"]' in lines
    final = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    assert lines.index("USER 10001:10001") > final
    # installed from the lock, in both layers
    syncs = [line for line in lines if line.startswith("RUN uv sync")]
    assert len(syncs) == 2
    assert all("--locked" in line for line in syncs)
    # the volumes exist and belong to the service's user before a named volume is mounted on them
    text = _read("Dockerfile")
    assert re.search(r"mkdir -p /models /outbox && chown 10001:10001 /models /outbox", text)
    assert 'VOLUME ["/models", "/outbox"]' in lines


def test_autoscaled_workloads_leave_their_replicas_to_the_autoscaler(rendered: list[dict[str, Any]]) -> None:
    scaled = {
        d["spec"]["scaleTargetRef"]["name"]
        for d in rendered
        if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
    }
    assert "storefront" in scaled
    counted = {
        d["metadata"]["name"]
        for d in rendered
        if d["kind"] in ("Deployment", "StatefulSet") and "replicas" in d["spec"]
    }
    assert scaled & counted == set()


def test_every_proact_workload_runs_an_image_make_image_builds(rendered: list[dict[str, Any]]) -> None:
    images = {
        d["metadata"]["name"]: pod_spec(d)["containers"][0]["image"]
        for d in rendered
        if d["kind"] in ("Deployment", "StatefulSet", "CronJob") and d["metadata"]["name"] != "otel-collector"
    }
    names = {image.rsplit(":", 1)[0].rsplit("/", 1)[-1] for image in images.values()}
    assert names == {"proact", "proact-trainer"}
    assert images["trainer"].rsplit(":", 1)[0].endswith("/proact-trainer")
    tags = {image.rsplit(":", 1)[1] for image in images.values()}
    assert len(tags) == 1  # one release of both
    assert "-t proact:local" in _read("Makefile")
    assert "--build-arg EXTRAS=trainer -t proact-trainer:local" in _read("Makefile")


def test_kafka_topics_are_generated_from_the_registry() -> None:
    from shared.contract import Topics
    from shared.contract.topics import strimzi

    committed = (ROOT / "k8s" / "base" / "kafka-topics.yaml").read_text()
    wanted = strimzi(Topics(prefix="proact", partitions=production_partitions()))
    assert committed == wanted, "regenerate: PROACT_TOPIC_PARTITIONS=24 python -m shared.contract strimzi"
    names = [d["spec"]["topicName"] for d in yaml.safe_load_all(committed) if d]
    assert {"proact.orders", "proact.actions.retry", "proact.engine.state"} <= set(names)


def test_ingress_is_closed_unless_opened(rendered: list[dict[str, Any]]) -> None:
    policies = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny-ingress"]["spec"]["podSelector"] == {}
    assert "storefront-public" in policies


def test_the_local_scripts_refuse_a_port_another_process_answers_on(tmp_path: Path) -> None:
    """A stray local mongod or Kafka on the port is refused with its pid, not used silently."""

    def refuse(port: int) -> subprocess.CompletedProcess[str]:
        script = f"source deploy/local/lib.sh; refuse_taken_port ferretdb 127.0.0.1 {port} && echo free || echo refused"
        env = {**os.environ, "PROACT_CACHE": str(tmp_path)}
        return subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)

    with socket.socket() as stray:
        stray.bind(("127.0.0.1", 0))
        stray.listen()
        port = stray.getsockname()[1]
        found = refuse(port)
    assert "refused" in found.stdout
    assert "is taken by another process" in found.stderr
    assert f"pid {os.getpid()}" in found.stderr  # the listener named (this test holds the socket)
    assert "free" in refuse(port).stdout


def test_the_local_scripts_are_executable() -> None:
    """run.sh and the Makefile call some scripts directly: each must carry its executable bit."""
    scripts = sorted((ROOT / "deploy/local").glob("*.sh"))
    assert scripts
    assert [s.name for s in scripts if not os.access(s, os.X_OK)] == []

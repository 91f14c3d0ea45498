"""deploy-kubernetes.sh and verify-kubernetes.sh against a stub kubectl (and curl) that records what
it is asked: the order of the rollout, the Secret handling and the failure messages."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from app.config import secret_key_weakness
from tests.support.paths import REPO

SECRET = "s3cr3t-" + "k" * 40
BASH = shutil.which("bash") or "/bin/bash"

KUBECTL = r"""#!/usr/bin/env bash
# Stub kubectl: logs each call; "apply -f -" also keeps the manifests it was given.
set -euo pipefail
printf '%s\n' "$*" >> "$STUB_DIR/calls"
case "$*" in
  "config current-context") echo stub-context ;;
  cluster-info*) [[ -z "${STUB_NO_CLUSTER:-}" ]] ;;
  "apply -f -") cat >> "$STUB_DIR/applied"; printf -- '---\n' >> "$STUB_DIR/applied" ;;
  *"get secret kvstore-secrets"*) [[ -n "${STUB_SECRET_EXISTS:-}" ]] ;;
  *"rollout status"*) [[ "$*" != *"${STUB_FAIL_ROLLOUT:-none}"* ]] ;;
  *"get pods"*"-o name"*) echo pod/kvstore-api-1 ;;
  *"get pods"*) echo "NAME READY STATUS" ;;
  *"wait --for=condition=Ready"*) true ;;
  *"wait --for=condition=complete job/redis-cluster-init"*) true ;;
  *"patch configmap kvstore-config --type merge -p "*) true ;;
  *"delete job redis-cluster-init --ignore-not-found"*) true ;;
  *"get endpointslices"*) [[ -n "${STUB_NO_ENDPOINTS:-}" ]] || printf '10.0.0.7 10.0.0.8 ' ;;
  *port-forward*) exec sleep 30 ;;
  *) echo "stub kubectl: unexpected call: $*" >&2; exit 99 ;;
esac
"""

CURL = r"""#!/usr/bin/env bash
# Stub curl: the API's answers, by path.
url="${*: -1}"
case "$url" in
  */api/v1/health/live) echo '{"status":"ok"}' ;;
  */api/v1/health/ready) echo '{"status":"ready","data_redis":{"status":"up"}}' ;;
  */api/v1/health) echo "{\"status\":\"${STUB_HEALTH:-ok}\",\"data_redis\":{\"status\":\"up\"}}" ;;
  */health) echo '{"status":"ok"}' ;;
  */openapi.json) echo '{"openapi":"3.1.0"}' ;;
  */metrics) echo 'http_requests_total{handler="/openapi.json",method="GET",status="200"} 1.0' ;;
  *) exit 22 ;;
esac
"""


@pytest.fixture
def stub_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("kubectl", KUBECTL), ("curl", CURL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_DIR": str(tmp_path), "HOME": str(tmp_path)}


def run(script: str, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(REPO / script)], env={**env, **extra}, capture_output=True, text=True, timeout=60, cwd="/"
    )


def calls(env: dict[str, str]) -> list[str]:
    path = Path(env["STUB_DIR"]) / "calls"
    return path.read_text().splitlines() if path.exists() else []


def applied(env: dict[str, str]) -> list[dict]:
    path = Path(env["STUB_DIR"]) / "applied"
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc] if path.exists() else []


def test_deploy_applies_in_dependency_order_and_waits_for_each_rollout(stub_env: dict[str, str]) -> None:
    result = run("deploy-kubernetes.sh", stub_env, SECRET_KEY=SECRET, API_IMAGE="registry.example/kvstore:2")
    assert result.returncode == 0, result.stderr
    order = [(doc["kind"], doc["metadata"]["name"]) for doc in applied(stub_env)]
    assert order[:3] == [("Namespace", "kvstore"), ("ConfigMap", "kvstore-config"), ("Secret", "kvstore-secrets")]
    position = {item: index for index, item in enumerate(order)}
    assert position[("StatefulSet", "redis-data")] < position[("Deployment", "kvstore-api")]
    assert position[("Deployment", "kvstore-api")] < position[("Deployment", "kvstore-huey-periodic")]
    assert order[-1] == ("Ingress", "kvstore")

    rollouts = [call.split()[-2] for call in calls(stub_env) if "rollout status" in call]
    assert rollouts == [
        "statefulset/redis-data",
        "statefulset/redis-queue",
        "deployment/kvstore-api",
        "deployment/kvstore-grpc",
        "deployment/kvstore-huey-periodic",
        "deployment/kvstore-huey",
    ]
    secret = next(doc for doc in applied(stub_env) if doc["kind"] == "Secret")
    assert base64.b64decode(secret["data"]["SECRET_KEY"]).decode() == SECRET
    assert not any(SECRET in call for call in calls(stub_env))  # never on a command line
    api = next(
        doc for doc in applied(stub_env) if doc["metadata"]["name"] == "kvstore-api" and doc["kind"] == "Deployment"
    )
    assert api["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/kvstore:2"


def test_deploy_with_redis_topology_cluster_runs_the_redis_cluster_and_points_the_app_at_it(
    stub_env: dict[str, str],
) -> None:
    result = run("deploy-kubernetes.sh", stub_env, SECRET_KEY=SECRET, REDIS_TOPOLOGY="cluster")
    assert result.returncode == 0, result.stderr
    order = [(doc["kind"], doc["metadata"]["name"]) for doc in applied(stub_env)]
    assert ("StatefulSet", "redis-data") not in order
    position = {item: index for index, item in enumerate(order)}
    assert position[("StatefulSet", "redis-cluster")] < position[("Deployment", "kvstore-api")]
    assert ("Job", "redis-cluster-init") in position
    made = calls(stub_env)
    [patch] = [call for call in made if "patch configmap kvstore-config" in call]
    settings = yaml.safe_load(patch.split(" -p ", 1)[1])["data"]
    assert settings == {"REDIS_URL": "redis://redis-cluster:6379/0", "REDIS_CLUSTER": "true"}
    # The ConfigMap is applied first, then switched; the Job goes before it is applied again, and is
    # waited for before the API starts.
    index = {call: number for number, call in enumerate(made)}
    delete = next(n for c, n in index.items() if "delete job redis-cluster-init" in c)
    wait_job = next(n for c, n in index.items() if "condition=complete job/redis-cluster-init" in c)
    api_rollout = next(n for c, n in index.items() if "rollout status deployment/kvstore-api" in c)
    assert delete < wait_job < api_rollout
    rollouts = [call.split()[-2] for call in made if "rollout status" in call]
    assert rollouts[:2] == ["statefulset/redis-cluster", "statefulset/redis-queue"]


def test_deploy_refuses_an_unknown_redis_topology(stub_env: dict[str, str]) -> None:
    result = run("deploy-kubernetes.sh", stub_env, SECRET_KEY=SECRET, REDIS_TOPOLOGY="sentinel")
    assert result.returncode == 1
    assert "REDIS_TOPOLOGY must be single or cluster, not 'sentinel'" in result.stderr


def test_deploy_keeps_an_existing_secret(stub_env: dict[str, str]) -> None:
    result = run("deploy-kubernetes.sh", stub_env, STUB_SECRET_EXISTS="1")
    assert result.returncode == 0, result.stderr
    assert "Secret" not in {doc["kind"] for doc in applied(stub_env)}
    assert "secret kvstore-secrets exists: kept" in result.stdout


def test_deploy_without_secret_key_generates_a_strong_one_never_shown(stub_env: dict[str, str]) -> None:
    first = run("deploy-kubernetes.sh", stub_env)
    assert first.returncode == 0, first.stderr
    assert "created with a generated SECRET_KEY" in first.stdout
    [secret] = [doc for doc in applied(stub_env) if doc["kind"] == "Secret"]
    key = base64.b64decode(secret["data"]["SECRET_KEY"]).decode()
    assert secret_key_weakness(key) is None, key
    assert key not in first.stdout + first.stderr
    assert not any(key in call for call in calls(stub_env))
    (Path(stub_env["STUB_DIR"]) / "applied").unlink()
    assert run("deploy-kubernetes.sh", stub_env).returncode == 0
    [other] = [doc for doc in applied(stub_env) if doc["kind"] == "Secret"]
    assert base64.b64decode(other["data"]["SECRET_KEY"]).decode() != key  # random, not a constant


def test_deploy_refuses_a_short_secret_key(stub_env: dict[str, str]) -> None:
    result = run("deploy-kubernetes.sh", stub_env, SECRET_KEY="short")
    assert result.returncode == 1
    assert "SECRET_KEY must be at least 32 characters" in result.stderr


def test_deploy_names_the_rollout_that_failed(stub_env: dict[str, str]) -> None:
    result = run("deploy-kubernetes.sh", stub_env, SECRET_KEY=SECRET, STUB_FAIL_ROLLOUT="deployment/kvstore-api")
    assert result.returncode == 1
    assert "deployment/kvstore-api is not ready after 300s" in result.stderr
    assert "Deployment" not in {doc["kind"] for doc in applied(stub_env) if "huey" in doc["metadata"]["name"]}


def test_deploy_without_a_cluster_says_so(stub_env: dict[str, str]) -> None:
    result = run("deploy-kubernetes.sh", stub_env, STUB_NO_CLUSTER="1")
    assert result.returncode == 1
    assert "cannot reach the Kubernetes API of context 'stub-context'" in result.stderr
    assert applied(stub_env) == []


def test_scripts_without_kubectl_say_so(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "mktemp", "rm"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
    for script in ("deploy-kubernetes.sh", "verify-kubernetes.sh"):
        result = run(script, {"PATH": str(bin_dir)})
        assert result.returncode == 1
        assert "kubectl not found in PATH" in result.stderr


def test_verify_checks_pods_endpoints_and_health_through_a_port_forward(stub_env: dict[str, str]) -> None:
    result = run("verify-kubernetes.sh", stub_env, LOCAL_PORT="18555")
    assert result.returncode == 0, result.stderr
    assert "kvstore is healthy" in result.stdout
    made = calls(stub_env)
    assert any("wait --for=condition=Ready pod -l app.kubernetes.io/part-of=kvstore" in call for call in made)
    assert "-n kvstore port-forward service/kvstore-api 18555:80" in made
    assert "10.0.0.7" in result.stdout


def test_verify_fails_without_ready_endpoints(stub_env: dict[str, str]) -> None:
    result = run("verify-kubernetes.sh", stub_env, STUB_NO_ENDPOINTS="1")
    assert result.returncode == 1
    assert "service kvstore-api has no ready endpoints" in result.stderr
    assert not any("port-forward" in call for call in calls(stub_env))


def test_verify_fails_when_a_redis_is_down(stub_env: dict[str, str]) -> None:
    result = run("verify-kubernetes.sh", stub_env, STUB_HEALTH="degraded")
    assert result.returncode == 1
    assert "the data or the queue Redis is not healthy" in result.stderr

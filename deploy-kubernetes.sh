#!/usr/bin/env bash
# Deploys kvstore to the cluster of the current kubectl context: applies kubernetes/*.yaml in
# dependency order and waits for every rollout. Run verify-kubernetes.sh afterwards.
#
# Environment:
#   SECRET_KEY       creates the kvstore-secrets Secret when the cluster has none yet (>= 32 random characters;
#                    python -c 'import secrets; print(secrets.token_urlsafe(48))'); without it a random key is
#                    generated; an existing Secret is kept
#   API_IMAGE        image of the API     (default: kvstore:1.0.0, as built from Dockerfile)
#   WORKER_IMAGE     image of the workers (default: kvstore-huey:1.0.0, as built from Dockerfile.huey)
#   ROLLOUT_TIMEOUT  how long to wait for each rollout (default: 300s)
#   REDIS_TOPOLOGY   single (default): one data Redis pod (redis-data.yaml); cluster: the production path,
#                    a 6-node Redis Cluster (redis-cluster/redis-cluster.yaml), the app switched to it with
#                    REDIS_URL=redis://redis-cluster:6379/0 and REDIS_CLUSTER=true
set -euo pipefail

readonly NAMESPACE=kvstore
MANIFESTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kubernetes"
readonly MANIFESTS
readonly DEFAULT_API_IMAGE=kvstore:1.0.0
readonly DEFAULT_WORKER_IMAGE=kvstore-huey:1.0.0
API_IMAGE="${API_IMAGE:-$DEFAULT_API_IMAGE}"
WORKER_IMAGE="${WORKER_IMAGE:-$DEFAULT_WORKER_IMAGE}"
ROLLOUT_TIMEOUT="${ROLLOUT_TIMEOUT:-300s}"
REDIS_TOPOLOGY="${REDIS_TOPOLOGY:-single}"
readonly CLUSTER_SETTINGS='{"data":{"REDIS_URL":"redis://redis-cluster:6379/0","REDIS_CLUSTER":"true"}}'

die() {
    printf 'deploy-kubernetes: error: %s\n' "$*" >&2
    exit 1
}

step() {
    printf '==> %s\n' "$*"
}

# Applies one manifest with the chosen images substituted.
apply() {
    local file="$MANIFESTS/$1"
    [[ -f "$file" ]] || die "missing manifest $file"
    step "apply $1"
    sed -e "s|image: $DEFAULT_API_IMAGE\$|image: $API_IMAGE|" \
        -e "s|image: $DEFAULT_WORKER_IMAGE\$|image: $WORKER_IMAGE|" "$file" |
        kubectl apply -f - || die "kubectl apply failed for $1 (see the message above)"
}

wait_rollout() {
    step "wait for $1 (up to $ROLLOUT_TIMEOUT)"
    kubectl -n "$NAMESPACE" rollout status "$1" --timeout="$ROLLOUT_TIMEOUT" ||
        die "$1 is not ready after $ROLLOUT_TIMEOUT; look at: kubectl -n $NAMESPACE describe $1; kubectl -n $NAMESPACE logs $1"
}

# The Secret is never applied from the template: it is created from SECRET_KEY, or kept if it exists.
ensure_secret() {
    if kubectl -n "$NAMESPACE" get secret kvstore-secrets >/dev/null 2>&1; then
        step "secret kvstore-secrets exists: kept"
        return
    fi
    if [[ -z "${SECRET_KEY:-}" ]]; then
        # 48 random bytes from the kernel, base64url: 64 characters, 384 bits. Never printed.
        SECRET_KEY="$(head -c 48 /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_')"
        step "secret kvstore-secrets does not exist: created with a generated SECRET_KEY (kept in the cluster only)"
    fi
    ((${#SECRET_KEY} >= 32)) || die "SECRET_KEY must be at least 32 characters long"
    step "create secret kvstore-secrets"
    local encoded
    encoded="$(printf '%s' "$SECRET_KEY" | base64 | tr -d '\n')"
    # Through stdin, so the key never shows up in a process list.
    kubectl apply -f - <<MANIFEST || die "could not create secret kvstore-secrets"
apiVersion: v1
kind: Secret
metadata:
  name: kvstore-secrets
  namespace: $NAMESPACE
  labels:
    app.kubernetes.io/name: kvstore
    app.kubernetes.io/part-of: kvstore
type: Opaque
data:
  SECRET_KEY: $encoded
MANIFEST
}

main() {
    command -v kubectl >/dev/null 2>&1 || die "kubectl not found in PATH"
    [[ -d "$MANIFESTS" ]] || die "manifest directory $MANIFESTS not found"
    local context
    context="$(kubectl config current-context 2>/dev/null || true)"
    kubectl cluster-info --request-timeout=10s >/dev/null 2>&1 ||
        die "cannot reach the Kubernetes API of context '${context:-<none>}' (kubectl cluster-info fails)"
    step "deploying kvstore to context '${context:-<none>}', namespace $NAMESPACE"

    apply namespace.yaml
    apply configmap.yaml
    ensure_secret
    apply network-policy.yaml

    case "$REDIS_TOPOLOGY" in
        single)
            apply redis-data.yaml
            wait_rollout statefulset/redis-data
            ;;
        cluster)
            step "data Redis: a Redis Cluster; kvstore-config switched to it"
            kubectl -n "$NAMESPACE" patch configmap kvstore-config --type merge -p "$CLUSTER_SETTINGS" ||
                die "could not point kvstore-config at the Redis Cluster"
            # A Job's template cannot change: the previous run goes, this one creates or checks the cluster.
            kubectl -n "$NAMESPACE" delete job redis-cluster-init --ignore-not-found >/dev/null ||
                die "could not remove the previous redis-cluster-init Job"
            apply redis-cluster/redis-cluster.yaml
            wait_rollout statefulset/redis-cluster
            step "wait for job/redis-cluster-init (up to $ROLLOUT_TIMEOUT)"
            kubectl -n "$NAMESPACE" wait --for=condition=complete job/redis-cluster-init --timeout="$ROLLOUT_TIMEOUT" ||
                die "the Redis Cluster did not form; look at: kubectl -n $NAMESPACE logs job/redis-cluster-init"
            ;;
        *) die "REDIS_TOPOLOGY must be single or cluster, not '$REDIS_TOPOLOGY'" ;;
    esac
    apply redis-queue.yaml
    wait_rollout statefulset/redis-queue

    apply api-deployment.yaml
    apply api-service.yaml
    apply api-pdb.yaml
    apply api-hpa.yaml
    wait_rollout deployment/kvstore-api

    apply grpc-deployment.yaml
    apply grpc-service.yaml
    wait_rollout deployment/kvstore-grpc

    apply huey-deployment.yaml
    wait_rollout deployment/kvstore-huey-periodic
    wait_rollout deployment/kvstore-huey

    apply ingress.yaml
    step "kvstore is deployed; check it with ./verify-kubernetes.sh"
}

main "$@"

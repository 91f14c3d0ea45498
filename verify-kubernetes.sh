#!/usr/bin/env bash
# Checks a kvstore deployment (deploy-kubernetes.sh) in the current kubectl context: every pod is
# Ready, the API Service has ready endpoints, and through a port-forward the health endpoints answer
# and /metrics serves Prometheus text. Exits non-zero with the reason on the first failure.
#
# Environment:
#   LOCAL_PORT    local port of the port-forward (default: 18080)
#   WAIT_TIMEOUT  how long to wait for pods to be Ready (default: 120s)
set -euo pipefail

readonly NAMESPACE=kvstore
readonly SERVICE=kvstore-api
LOCAL_PORT="${LOCAL_PORT:-18080}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-120s}"
PORT_FORWARD_PID=""
PORT_FORWARD_LOG="$(mktemp)"

die() {
    printf 'verify-kubernetes: FAILED: %s\n' "$*" >&2
    exit 1
}

step() {
    printf '==> %s\n' "$*"
}

cleanup() {
    if [[ -n "$PORT_FORWARD_PID" ]]; then
        kill "$PORT_FORWARD_PID" 2>/dev/null || true
        wait "$PORT_FORWARD_PID" 2>/dev/null || true
    fi
    rm -f "$PORT_FORWARD_LOG"
}
trap cleanup EXIT

check_pods() {
    step "pods of namespace $NAMESPACE"
    local pods
    pods="$(kubectl -n "$NAMESPACE" get pods -l app.kubernetes.io/part-of=kvstore -o name)" ||
        die "cannot list the pods of namespace $NAMESPACE"
    [[ -n "$pods" ]] || die "no kvstore pods in namespace $NAMESPACE: run ./deploy-kubernetes.sh first"
    kubectl -n "$NAMESPACE" get pods -l app.kubernetes.io/part-of=kvstore -o wide
    kubectl -n "$NAMESPACE" wait --for=condition=Ready pod -l app.kubernetes.io/part-of=kvstore \
        --timeout="$WAIT_TIMEOUT" >/dev/null ||
        die "not every kvstore pod is Ready after $WAIT_TIMEOUT (kubectl -n $NAMESPACE describe pod <name>)"
}

check_endpoints() {
    step "ready endpoints of service $SERVICE"
    local addresses
    addresses="$(kubectl -n "$NAMESPACE" get endpointslices -l "kubernetes.io/service-name=$SERVICE" \
        -o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{" "}{end}')" ||
        die "cannot read the endpoint slices of service $SERVICE"
    [[ -n "${addresses// /}" ]] ||
        die "service $SERVICE has no ready endpoints (readiness probe failing? kubectl -n $NAMESPACE describe pods -l app.kubernetes.io/component=api)"
    printf '    %s\n' "$addresses"
}

start_port_forward() {
    step "port-forward service/$SERVICE to 127.0.0.1:$LOCAL_PORT"
    kubectl -n "$NAMESPACE" port-forward "service/$SERVICE" "$LOCAL_PORT:80" >"$PORT_FORWARD_LOG" 2>&1 &
    PORT_FORWARD_PID=$!
    for _ in $(seq 1 30); do
        if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$LOCAL_PORT/health" 2>/dev/null; then
            return
        fi
        kill -0 "$PORT_FORWARD_PID" 2>/dev/null ||
            die "kubectl port-forward exited: $(cat "$PORT_FORWARD_LOG")"
        sleep 0.5
    done
    die "nothing answers on 127.0.0.1:$LOCAL_PORT through the port-forward: $(cat "$PORT_FORWARD_LOG")"
}

# Prints the body of a GET that must answer 200.
get_ok() {
    local path="$1" body
    body="$(curl -fsS --max-time 10 "http://127.0.0.1:$LOCAL_PORT$path")" ||
        die "GET $path did not answer 200"
    printf '%s' "$body"
}

check_http() {
    local body
    step "GET /api/v1/health/live"
    body="$(get_ok /api/v1/health/live)"
    [[ "$body" == *'"ok"'* ]] || die "liveness answered: $body"
    step "GET /api/v1/health/ready"
    body="$(get_ok /api/v1/health/ready)"
    [[ "$body" == *'"ready"'* ]] || die "readiness answered: $body"
    step "GET /api/v1/health"
    body="$(get_ok /api/v1/health)"
    [[ "$body" == *'"status":"ok"'* ]] || die "the data or the queue Redis is not healthy: $body"
    printf '    %s\n' "$body"
    step "GET /openapi.json"
    body="$(get_ok /openapi.json)"
    [[ "$body" == *'"openapi"'* ]] || die "/openapi.json is not an OpenAPI document"
    # Health probes are not counted, the request above is: the scrape has at least one series.
    step "GET /metrics"
    body="$(get_ok /metrics)"
    [[ "$body" == *'http_requests_total{'* ]] || die "/metrics does not count requests: ${body:0:300}"
}

main() {
    command -v kubectl >/dev/null 2>&1 || die "kubectl not found in PATH"
    command -v curl >/dev/null 2>&1 || die "curl not found in PATH"
    kubectl cluster-info --request-timeout=10s >/dev/null 2>&1 ||
        die "cannot reach the Kubernetes API of context '$(kubectl config current-context 2>/dev/null || echo '<none>')'"
    check_pods
    check_endpoints
    start_port_forward
    check_http
    step "kvstore is healthy"
}

main "$@"

#!/usr/bin/env bash
# LocalStack 4.8.1 in host mode (no Docker) serving EC2 and KMS on loopback, for the
# awskms seal and auto_join tests.
#
#   scripts/localstack.sh start    create the venv if needed, start, wait until ready
#   scripts/localstack.sh stop     stop it (and its children)
#   scripts/localstack.sh status   exit 0 when running and healthy
#   scripts/localstack.sh env      print the variables clients need (eval-able)
#
# Environment: LOCALSTACK_DIR (logs, pid, state; default .lab/localstack),
# LOCALSTACK_VENV (default .venv-localstack), LOCALSTACK_PORT (default 4566),
# LOCALSTACK_TIMEOUT (seconds to wait for readiness; default 120), PYTHON (default python3;
# the pins are known to work on Python 3.11 — newer localstack-core releases need 3.12+).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUIREMENTS="$ROOT/scripts/localstack-requirements.txt"
VENV="${LOCALSTACK_VENV:-$ROOT/.venv-localstack}"
DIR="${LOCALSTACK_DIR:-$ROOT/.lab/localstack}"
PORT="${LOCALSTACK_PORT:-4566}"
TIMEOUT="${LOCALSTACK_TIMEOUT:-120}"
PYTHON="${PYTHON:-python3}"
ENDPOINT="http://127.0.0.1:$PORT"
PIDFILE="$DIR/localstack.pid"
LOG="$DIR/localstack.log"

die() {
    echo "localstack.sh: $*" >&2
    exit 1
}

# Installs the pinned requirements into the venv unless the stamp says they already are.
ensure_venv() {
    local want have=""
    want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
    [[ -f "$VENV/.requirements.sha256" ]] && have="$(cat "$VENV/.requirements.sha256")"
    if [[ -x "$VENV/bin/python" && "$want" == "$have" ]]; then
        return
    fi
    echo "localstack.sh: installing $REQUIREMENTS into $VENV (first time takes a few minutes)" >&2
    "$PYTHON" -m venv "$VENV"
    # Keep the venv out of git without touching the project's .gitignore.
    echo '*' >"$VENV/.gitignore"
    "$VENV/bin/pip" install --quiet -r "$REQUIREMENTS"
    echo "$want" >"$VENV/.requirements.sha256"
}

pid_alive() {
    [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

healthy() {
    curl -fsS --max-time 2 "$ENDPOINT/_localstack/health" >/dev/null 2>&1
}

start() {
    mkdir -p "$DIR/tmp" "$DIR/volume"
    if pid_alive; then
        healthy || die "pid $(cat "$PIDFILE") is running but $ENDPOINT is not healthy; see $LOG"
        echo "localstack.sh: already running (pid $(cat "$PIDFILE")) at $ENDPOINT"
        return
    fi
    if healthy; then
        die "something else already answers at $ENDPOINT; stop it or set LOCALSTACK_PORT"
    fi
    ensure_venv
    # setsid: own process group, so stop can take the children down too.
    # EAGER_SERVICE_LOADING: load EC2/KMS before "Ready." (lazily, the first EC2 call can
    # take over 10 s on a busy machine and time out). DNS_ADDRESS=0: no DNS server on :53.
    # DISABLE_EVENTS / SKIP_SSL_CERT_DOWNLOAD: no calls home.
    # GATEWAY_SERVER=hypercorn: the default twisted server ignores the host and binds 0.0.0.0.
    # LOCALSTACK_VOLUME_DIR: state stays under $DIR, apart from other checkouts.
    env GATEWAY_LISTEN="127.0.0.1:$PORT" GATEWAY_SERVER=hypercorn SERVICES=ec2,kms,iam,sts EAGER_SERVICE_LOADING=1 \
        DNS_ADDRESS=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
        LOCALSTACK_VOLUME_DIR="$DIR/volume" \
        setsid "$VENV/bin/python" -m localstack.runtime.main >"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    local deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! pid_alive; then
            tail -n 30 "$LOG" >&2 || true
            rm -f "$PIDFILE"
            die "LocalStack exited during startup; log: $LOG"
        fi
        if grep -q '^Ready\.' "$LOG" && healthy; then
            echo "localstack.sh: ready at $ENDPOINT (pid $(cat "$PIDFILE"), log $LOG)"
            return
        fi
        sleep 1
    done
    tail -n 30 "$LOG" >&2 || true
    stop
    die "LocalStack not ready after ${TIMEOUT}s; log: $LOG"
}

stop() {
    if [[ ! -f "$PIDFILE" ]]; then
        echo "localstack.sh: not running"
        return
    fi
    local pid
    pid="$(cat "$PIDFILE")"
    # The whole process group, even if its leader already died and left children behind.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    echo "localstack.sh: stopped (pid $pid)"
}

status() {
    if pid_alive && healthy; then
        echo "localstack.sh: running (pid $(cat "$PIDFILE")) at $ENDPOINT"
        curl -fsS --max-time 2 "$ENDPOINT/_localstack/health"
        echo
    elif pid_alive; then
        echo "localstack.sh: pid $(cat "$PIDFILE") running but not healthy; log: $LOG"
        return 1
    else
        echo "localstack.sh: not running"
        return 1
    fi
}

print_env() {
    cat <<EOF
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export LABNODE_LOCALSTACK_ENDPOINT=$ENDPOINT
EOF
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
env) print_env ;;
*) die "usage: $0 start|stop|status|env" ;;
esac

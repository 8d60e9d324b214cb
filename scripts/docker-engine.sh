#!/usr/bin/env bash
# Makes sure a local Docker engine answers, for the container runner and its tests.
#
# Idempotent: installs docker.io from the system's package sources when dockerd is missing,
# starts dockerd in the background when it is not running, then waits until `docker info`
# answers. Exits non-zero with a message saying what failed.
#
# The engine runs without a bridge or iptables rules: submitted models run with
# `--network none`, so no container network is ever needed. When Debian's crun is
# installed it is registered as the OCI runtime `crun` (CONTAINER_RUNTIME=crun runs models
# under it), unless /etc/docker/daemon.json registers it already.
#
# Environment:
#   DOCKER_ENGINE_LOG      dockerd's log file (default: var/log/dockerd.log in the repository)
#   DOCKER_ENGINE_TIMEOUT  seconds to wait for the engine to answer (default: 60)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
log=${DOCKER_ENGINE_LOG:-$repo/var/log/dockerd.log}
timeout=${DOCKER_ENGINE_TIMEOUT:-60}

die() {
  echo "docker-engine: $*" >&2
  exit 1
}

engine_answers() {
  docker info >/dev/null 2>&1
}

if command -v docker >/dev/null 2>&1 && engine_answers; then
  exit 0
fi

mkdir -p "$(dirname "$log")"
# One starter at a time: parallel test sessions may call this together.
exec 9>"$(dirname "$log")/docker-engine.lock"
flock -w "$timeout" 9 || die "another start of the engine did not finish within ${timeout}s"

if command -v docker >/dev/null 2>&1 && engine_answers; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || die "dockerd is not installed and installing docker.io needs root"
  command -v apt-get >/dev/null 2>&1 || die "dockerd is not installed and apt-get is not available to install docker.io"
  echo "docker-engine: installing docker.io" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q docker.io >>"$log" 2>&1; then
    apt-get update -q >>"$log" 2>&1 || die "apt-get update failed (see $log)"
    apt-get install -y -q docker.io >>"$log" 2>&1 || die "installing docker.io failed (see $log)"
  fi
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || die "dockerd is not running and starting it needs root"
  echo "docker-engine: starting dockerd (log: $log)" >&2
  runtimes=()
  if [ -x /usr/bin/crun ] && ! grep -qs '"crun"' /etc/docker/daemon.json; then
    runtimes=(--add-runtime crun=/usr/bin/crun)
  fi
  nohup dockerd --iptables=false --bridge=none "${runtimes[@]}" >>"$log" 2>&1 </dev/null &
  disown || true
fi

deadline=$((SECONDS + timeout))
until engine_answers; do
  if [ $SECONDS -ge $deadline ]; then
    tail -n 20 "$log" >&2 2>/dev/null || true
    die "the engine did not answer \`docker info\` within ${timeout}s (log: $log)"
  fi
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    tail -n 20 "$log" >&2 2>/dev/null || true
    die "dockerd exited while starting (log: $log)"
  fi
  sleep 0.5
done

#!/usr/bin/env bash
# Starts (or stops) one more Docker engine on this machine, beside the one of
# scripts/docker-engine.sh: a worker host of its own for the multi-host tests, or a second
# runner on one machine.
#
#   scripts/extra-docker-engine.sh start NAME   prints the engine's DOCKER_HOST once it answers
#   scripts/extra-docker-engine.sh stop NAME    stops it (its images and data are kept)
#   scripts/extra-docker-engine.sh purge NAME   stops it and removes its data root
#
# Each engine has its own socket, data root, exec root, pid file and containerd namespace:
#   socket     unix://$EXTRA_ENGINE_RUN/NAME/docker.sock
#   exec root  $EXTRA_ENGINE_RUN/NAME            (default /run/medmod-engines)
#   data root  $EXTRA_ENGINE_DATA/NAME           (default /var/lib/medmod-engines)
# and runs, like the first one, without a bridge or iptables rules (models run with
# --network none). Images are the engine's own: there is no registry, so load what it
# needs with `docker load` (the runner loads each submission's image itself).
# Idempotent; exits non-zero saying what failed. Needs root and dockerd (scripts/docker-engine.sh
# installs docker.io).
#
# Environment: EXTRA_ENGINE_RUN, EXTRA_ENGINE_DATA, DOCKER_ENGINE_TIMEOUT (default 60 s).
set -euo pipefail

action=${1:-}
name=${2:-}
run_base=${EXTRA_ENGINE_RUN:-/run/medmod-engines}
data_base=${EXTRA_ENGINE_DATA:-/var/lib/medmod-engines}
timeout=${DOCKER_ENGINE_TIMEOUT:-60}

die() {
  echo "extra-docker-engine: $*" >&2
  exit 1
}

case "$name" in
  "" | *[!a-z0-9-]*) die "usage: $0 start|stop|purge NAME (NAME: lower-case letters, digits and -)" ;;
esac
exec_root=$run_base/$name
data_root=$data_base/$name
sock=$exec_root/docker.sock
pidfile=$exec_root/dockerd.pid
log=$data_root.log
host=unix://$sock

answers() {
  DOCKER_HOST=$host docker info >/dev/null 2>&1
}

running_pid() {
  [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && cat "$pidfile"
}

stop_engine() {
  local pid
  pid=$(running_pid) || return 0
  kill "$pid"
  for _ in $(seq 1 $((timeout * 2))); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
}

case "$action" in
  start) ;;
  stop) stop_engine; exit 0 ;;
  purge) stop_engine; rm -rf "$data_root" "$exec_root" "$log" "$exec_root.lock"; exit 0 ;;
  *) die "usage: $0 start|stop|purge NAME" ;;
esac

[ "$(id -u)" -eq 0 ] || die "starting a Docker engine needs root"
command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed (scripts/docker-engine.sh installs docker.io)"
mkdir -p "$exec_root" "$data_root"
exec 9>"$exec_root.lock"
flock -w "$timeout" 9 || die "another start of engine $name did not finish within ${timeout}s"

if answers; then
  echo "$host"
  exit 0
fi
if pid=$(running_pid); then
  die "engine $name (pid $pid) is running but does not answer on $sock (log: $log)"
fi
rm -f "$sock" "$pidfile"
runtimes=()
if [ -x /usr/bin/crun ]; then
  runtimes=(--add-runtime crun=/usr/bin/crun)
fi
nohup dockerd --host "$host" --data-root "$data_root" --exec-root "$exec_root" \
  --pidfile "$pidfile" --containerd-namespace "medmod-$name" \
  --containerd-plugins-namespace "medmod-$name-plugins" \
  --iptables=false --ip-masq=false --bridge=none "${runtimes[@]}" \
  >>"$log" 2>&1 </dev/null &
disown || true

deadline=$((SECONDS + timeout))
until answers; do
  if [ $SECONDS -ge $deadline ]; then
    tail -n 20 "$log" >&2 2>/dev/null || true
    die "engine $name did not answer \`docker info\` on $sock within ${timeout}s (log: $log)"
  fi
  sleep 0.5
done
echo "$host"

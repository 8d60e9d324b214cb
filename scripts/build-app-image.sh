#!/usr/bin/env bash
# Builds the platform's image (docker/app/Dockerfile) where no container registry can be
# reached, and checks that it starts: the image of docker/compose.yml's web, worker and beat.
#
#   scripts/build-app-image.sh [TAG]       (default: medmod-leaderboard:latest)
#
# 1. Base: `debootstrap --variant=minbase` of the host's Debian suite with Python 3, pip and
#    CA certificates (scripts/lib/debian-rootfs.sh), cached in var/cache/app-image/, then
#    `docker import`ed (skipped when the engine has it).
# 2. Wheels: `pip wheel` of requirements.txt (torch aside, as in the image) in the base
#    image, on the host's network, into docker/app/wheels/.
# 3. `docker build --network none` with PYTHON_IMAGE set to that base and
#    PIP_OPTIONS=--no-index: the build installs from the wheels alone, and takes plotly.js's
#    basic bundle (fetched by bin/setup with npm) from docker/app/vendor/.
# 4. Smoke test: `manage.py check --deploy` with production settings; then, with a
#    PostgreSQL server and Redis on the host (DATABASE_SERVER, default
#    postgres://postgres@127.0.0.1:5432; REDIS_URL, default redis://127.0.0.1:6379/10),
#    `migrate` into a database of its own and gunicorn on the host's network, asked for a page
#    and the API; the database is dropped afterwards. SMOKE=0 skips step 4.
#
# Needs root (debootstrap) on the first build, a running engine (scripts/docker-engine.sh)
# and the project's environment (bin/setup; PYTHON to use another). Environment: APP_SUITE (default: the host's Debian codename), MIRROR (default: the first
# Debian source configured for apt that serves the suite).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/debian-rootfs.sh
. "$repo/scripts/lib/debian-rootfs.sh"
tag=${1:-medmod-leaderboard:latest}
py=${PYTHON:-$repo/.venv/bin/python}  # the project's environment (bin/setup): psycopg
cache=$repo/var/cache/app-image
wheels=$repo/docker/app/wheels
packages=python3,python3-pip,python-is-python3,ca-certificates,busybox-static
rootfs_recipe=1  # bump when the recipe of scripts/lib/debian-rootfs.sh changes

require_engine
# 1. The base image.
base_tag=$(debian_base_image app-base "${APP_SUITE:-$(host_suite)}" "$packages" "$rootfs_recipe" "$cache")

# 2. The wheels, made in the base image itself so that they fit its Python (environment
#    markers included), on the host's network with the host's CA certificates; what is
#    there already is reused.
mkdir -p "$cache" "$wheels"
grep -v '^torch' "$repo/requirements.txt" >"$cache/requirements-app.txt"
certs=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
mounts=(-v "$wheels:/wheels" -v "$cache/requirements-app.txt:/requirements.txt:ro")
[ -r "$certs" ] && mounts+=(-v "$certs:/etc/ssl/certs/ca-certificates.crt:ro")
say "wheels of requirements.txt (torch aside) into docker/app/wheels/"
docker run --rm --network host "${mounts[@]}" -e PIP_BREAK_SYSTEM_PACKAGES=1 \
  -e PIP_DISABLE_PIP_VERSION_CHECK=1 -e PIP_DEFAULT_TIMEOUT=180 "$base_tag" \
  sh -c 'pip wheel --quiet --wheel-dir /wheels -r /requirements.txt && chown -R '"$(id -u):$(id -g)"' /wheels' \
  >"$cache/wheels.log" 2>&1 || { tail -n 30 "$cache/wheels.log" >&2; die "pip wheel failed"; }

# plotly.js's basic bundle, which bin/setup fetched with npm and checked, into the build
# context (the build itself has no network).
bundle=$(cd "$repo" && "$py" -m leaderboard.board.plotly_bundle path)
if [ ! -f "$bundle" ]; then
  (cd "$repo" && "$py" -m leaderboard.board.plotly_bundle fetch) >&2 \
    || die "plotly.js's basic bundle is missing and npm could not fetch it (bin/setup does)"
fi
rm -f "$repo"/docker/app/vendor/*.js
cp "$bundle" "$repo/docker/app/vendor/"

# 3. The image.
say "building $tag"
previous=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
DOCKER_BUILDKIT=0 docker build --network none -f "$repo/docker/app/Dockerfile" \
  --build-arg "PYTHON_IMAGE=$base_tag" --build-arg "PIP_OPTIONS=--no-index" \
  -t "$tag" "$repo" >"$cache/build.log" 2>&1 \
  || { tail -n 40 "$cache/build.log" >&2; die "docker build failed (log: $cache/build.log)"; }
current=$(docker image inspect -f '{{.Id}}' "$tag")
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  docker rmi "$previous" >/dev/null 2>&1 || true  # the superseded build, now untagged
fi
say "built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1 / 1e6}'))"

[ "${SMOKE:-1}" = 1 ] || exit 0

# 4. Smoke test: production settings, then migrate and serve against the host's servers.
server=${DATABASE_SERVER:-postgres://postgres@127.0.0.1:5432}
database=leaderboard_image_smoke_$$
redis=${REDIS_URL:-redis://127.0.0.1:6379/10}
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
name=leaderboard-image-smoke-$$
env_args=(
  -e DJANGO_ENV=production -e SECRET_KEY="smoke-test-$(date +%s%N)-only" -e DEBUG=false
  -e ALLOWED_HOSTS=127.0.0.1,localhost -e DATABASE_URL="$server/$database"
  -e CELERY_BROKER_URL="$redis" -e CACHE_URL="$redis"
  -e AWS_STORAGE_BUCKET_NAME=smoke-uploads -e AWS_S3_REGION_NAME=us-east-1
  -e AWS_ACCESS_KEY_ID=smoke -e AWS_SECRET_ACCESS_KEY=smoke
)
cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  "$py" - "$server/postgres" "$database" <<'PY' || true
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as c:
    c.execute(f'DROP DATABASE IF EXISTS "{sys.argv[2]}" WITH (FORCE)')
PY
}
trap cleanup EXIT

say "smoke test: manage.py check --deploy"
docker run --rm --network none "${env_args[@]}" "$tag" python manage.py check --deploy \
  --fail-level ERROR >"$cache/smoke.log" 2>&1 || { cat "$cache/smoke.log" >&2; die "check --deploy failed"; }
"$py" - "$server/postgres" "$database" <<'PY' || die "cannot create the smoke test's database on $server"
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as c:
    c.execute(f'CREATE DATABASE "{sys.argv[2]}"')
PY
say "smoke test: migrate into $database"
docker run --rm --network host "${env_args[@]}" "$tag" python manage.py migrate --noinput \
  >>"$cache/smoke.log" 2>&1 || { tail -n 30 "$cache/smoke.log" >&2; die "migrate failed"; }
say "smoke test: gunicorn on 127.0.0.1:$port"
docker run -d --name "$name" --network host "${env_args[@]}" "$tag" \
  gunicorn leaderboard.wsgi -c python:leaderboard.gunicorn_config --bind "127.0.0.1:$port" \
  --workers 2 >/dev/null
for path in /api/limits/ / /api/tasks/ /static/board/site.css; do
  ok=
  for _ in $(seq 1 60); do
    if code=$(python3 -c "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=5).status)" \
      "http://127.0.0.1:$port$path" 2>/dev/null) && [ "$code" = 200 ]; then
      ok=1
      break
    fi
    sleep 0.5
  done
  [ -n "$ok" ] || { docker logs "$name" 2>&1 | tail -n 30 >&2; die "GET $path did not answer 200"; }
  say "smoke test: GET $path 200"
done
# A body declared as 3 GiB is refused at once, unread, with the API's error shape.
probe=$(python3 - "$port" <<'PY'
import json, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
t0 = time.monotonic()
s.sendall(b"POST /api/submissions/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 3221225472\r\n\r\n")
data = b""
while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
status = data.split(b" ", 2)[1].decode()
code = json.loads(data.split(b"\r\n\r\n", 1)[1])["code"]
print(f"{status} {code} in {time.monotonic() - t0:.3f} s")
PY
) || die "the 3 GiB probe failed"
case "$probe" in
  "413 file_too_large"*) say "smoke test: POST /api/submissions/ declared 3 GiB: $probe" ;;
  *) die "a body declared as 3 GiB was answered: $probe" ;;
esac
if docker logs "$name" 2>&1 | grep -q Traceback; then
  docker logs "$name" 2>&1 | tail -n 30 >&2
  die "a traceback in the server's log"
fi
served=$(docker exec "$name" head -c 200 /app/static/vendor/plotly.min.js)
case "$served" in
  *"plotly.js (basic"*) say "smoke test: the pages get plotly.js's basic bundle" ;;
  *) die "the image serves another plotly.js than the basic bundle: ${served:0:120}" ;;
esac
say "the image starts and serves"

#!/usr/bin/env bash
# Builds the template model image from Debian packages, with no container registry, and
# writes the `docker save` archive a participant would upload.
#
#   scripts/build-template-image.sh [OUTPUT.tar]     (default: var/containers/template-model.tar)
#
# 1. Base root filesystem: `debootstrap --variant=minbase` of the host's Debian suite with
#    python3, python3-numpy and python3-pil, from the package source already configured for
#    apt on this machine. The tarball is cached in var/cache/template-model/ (keyed by suite,
#    architecture and package list), so only the first build downloads anything.
# 2. `docker import` of that tarball as the base image (skipped when the engine has it).
# 3. `docker build` of docker/template-model/ on that base (no network needed: no RUN steps).
# 4. `docker save` of the result.
#
# Needs root (debootstrap) on the first build and a running engine (scripts/docker-engine.sh).
# Environment: TEMPLATE_SUITE (default: the host's Debian codename), TEMPLATE_MIRROR
# (default: the first Debian source configured for apt that serves the suite).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/debian-rootfs.sh
. "$repo/scripts/lib/debian-rootfs.sh"
out=${1:-$repo/var/containers/template-model.tar}
cache=$repo/var/cache/template-model
model_tag=medmod/template-model:latest
packages=python3,python3-numpy,python3-pil
rootfs_recipe=2  # bump when the recipe of scripts/lib/debian-rootfs.sh changes

die() {
  echo "build-template-image: $*" >&2
  exit 1
}
say() { echo "build-template-image: $*" >&2; }

command -v docker >/dev/null 2>&1 || die "the docker command is missing (run scripts/docker-engine.sh)"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (run scripts/docker-engine.sh)"

suite=${TEMPLATE_SUITE:-$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")}
[ -n "$suite" ] || die "cannot tell the Debian suite: set TEMPLATE_SUITE"
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)

key=$(printf '%s\n' "$suite" "$arch" "$packages" "$rootfs_recipe" | sha256sum | cut -c1-12)
rootfs_tar=$cache/rootfs-$suite-$arch-$key.tar
base_tag=medmod/template-base:$suite-$key

if [ ! -s "$rootfs_tar" ]; then
  MIRROR=${TEMPLATE_MIRROR:-} debian_rootfs "$suite" "$arch" "$packages" "$rootfs_tar" input output
fi

if ! docker image inspect "$base_tag" >/dev/null 2>&1; then
  say "importing the base image $base_tag"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$rootfs_tar" "$base_tag" >/dev/null
fi

say "building $model_tag"
previous=$(docker image inspect -f '{{.Id}}' "$model_tag" 2>/dev/null || true)
DOCKER_BUILDKIT=0 docker build --quiet --network none --build-arg "BASE_IMAGE=$base_tag" \
  -t "$model_tag" "$repo/docker/template-model" >/dev/null 2>"$cache/build.log" \
  || { cat "$cache/build.log" >&2; die "docker build failed"; }

current=$(docker image inspect -f '{{.Id}}' "$model_tag")
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  docker rmi "$previous" >/dev/null 2>&1 || true  # the superseded build, now untagged
fi

mkdir -p "$(dirname "$out")"
docker save -o "$out.$$.part" "$model_tag"
mv "$out.$$.part" "$out"
say "wrote $out ($(du -h "$out" | cut -f1))"
echo "$out"

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
# 3. `docker build` of docker/template-model/ on that base, with no network (its one RUN step
#    clears set-user-ID and set-group-ID bits, which uploads may not carry).
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

require_engine
base_tag=$(MIRROR=${TEMPLATE_MIRROR:-} debian_base_image template-base \
  "${TEMPLATE_SUITE:-$(host_suite)}" "$packages" "$rootfs_recipe" "$cache" input output)

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

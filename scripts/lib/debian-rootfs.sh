# Sourced by the image builders: base images made from Debian's packages, with no container
# registry.
#
#   debian_base_image NAME SUITE PACKAGES RECIPE CACHE [DIR ...]
#       prints the tag medmod/NAME:SUITE-KEY of the image, imported into the engine when it
#       is not there, of a root filesystem cached as a tarball in CACHE (KEY hashes the
#       suite, architecture, packages and RECIPE, a number to bump when the recipe below
#       changes)
#   debian_rootfs SUITE ARCH PACKAGES OUT.tar [DIR ...]
#       the root filesystem itself, by debootstrap from the package source apt already uses
#   require_engine, host_suite, die, say
#
# PACKAGES is debootstrap's comma-separated --include list; each DIR is made (empty) in the
# root filesystem. Package caches, documentation, locales and logs are left out. Needs root;
# installs debootstrap when it is missing. MIRROR overrides the package source.

die() {
  echo "$(basename "$0" .sh): $*" >&2
  exit 1
}
say() { echo "$(basename "$0" .sh): $*" >&2; }

require_engine() {
  command -v docker >/dev/null 2>&1 || die "the docker command is missing (run scripts/docker-engine.sh)"
  docker info >/dev/null 2>&1 || die "the Docker engine does not answer (run scripts/docker-engine.sh)"
}

# The host's Debian codename.
host_suite() {
  (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
}

# The Debian package source apt already uses for the suite $1: deb822 .sources files first,
# then one-line sources.list entries. Only Debian's main archive is wanted (not -security).
debian_mirror() {
  local suite=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk -v suite="$suite" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uris != "") {
          split(uris, u, " "); print u[1]; found = 1; exit
        }
        types = ""; suites = ""; uris = ""
      }
      /^[ \t]*$/ { flush(); next }
      /^#/ { next }
      /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
      /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
      /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0 }
      END { if (!found) flush() }
    ' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk -v suite="$suite" '
      $1 == "deb" {
        i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }
    ' "$f"
  done
}

debian_rootfs() {
  local suite=$1 arch=$2 packages=$3 out=$4 mirror work dir
  shift 4
  [ "$(id -u)" -eq 0 ] || die "building a root filesystem needs root (debootstrap)"
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null \
      || die "debootstrap is missing and could not be installed"
  fi
  mirror=${MIRROR:-$(debian_mirror "$suite" | head -n 1)}
  [ -n "$mirror" ] || die "no Debian package source for $suite is configured for apt: set MIRROR"
  mkdir -p "$(dirname "$out")"
  work=$(mktemp -d "$(dirname "$out")/rootfs.XXXXXX")
  say "debootstrap $suite ($arch) with $packages"
  if ! debootstrap --variant=minbase --arch="$arch" --include="$packages" \
    "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    rm -rf "$work"
    die "debootstrap failed"
  fi
  rm -rf "$work/root"/var/cache/apt/* "$work/root"/var/lib/apt/lists/* \
    "$work/root"/usr/share/doc/* "$work/root"/usr/share/man/* "$work/root"/usr/share/info/* \
    "$work/root"/usr/share/locale/* "$work/root"/var/log/* "$work/root"/tmp/* \
    "$work/root"/etc/machine-id "$work/root"/etc/hostname "$work/root"/etc/resolv.conf
  find "$work/root/usr/lib/python3" -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
  for dir in "$@"; do
    mkdir -p "$work/root/$dir"
  done
  tar --numeric-owner --xattrs -C "$work/root" -cf "$work/rootfs.tar" .
  mv "$work/rootfs.tar" "$out"
  rm -rf "$work"
  say "cached the base root filesystem $out ($(du -h "$out" | cut -f1))"
}

debian_base_image() {
  local name=$1 suite=$2 packages=$3 recipe=$4 cache=$5 arch key tar tag
  shift 5
  [ -n "$suite" ] || die "cannot tell the Debian suite"
  arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
  key=$(printf '%s\n' "$suite" "$arch" "$packages" "$recipe" | sha256sum | cut -c1-12)
  tar=$cache/rootfs-$suite-$arch-$key.tar
  tag=medmod/$name:$suite-$key
  [ -s "$tar" ] || debian_rootfs "$suite" "$arch" "$packages" "$tar" "$@"
  if ! docker image inspect "$tag" >/dev/null 2>&1; then
    say "importing the base image $tag"
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["python3"]' \
      "$tar" "$tag" >/dev/null
  fi
  echo "$tag"
}

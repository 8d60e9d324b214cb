# Sourced by the image builders: a minimal Debian root filesystem as a tarball, made with
# debootstrap from the package source apt already uses, with no container registry.
#
#   debian_rootfs SUITE ARCH PACKAGES OUT.tar [DIR ...]
#
# PACKAGES is debootstrap's comma-separated --include list; each DIR is made (empty) in the
# root filesystem. Package caches, documentation, locales and logs are left out. Needs root;
# installs debootstrap when it is missing. MIRROR overrides the package source.

rootfs_die() {
  echo "debian-rootfs: $*" >&2
  exit 1
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
  [ "$(id -u)" -eq 0 ] || rootfs_die "building a root filesystem needs root (debootstrap)"
  if ! command -v debootstrap >/dev/null 2>&1; then
    echo "debian-rootfs: installing debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null \
      || rootfs_die "debootstrap is missing and could not be installed"
  fi
  mirror=${MIRROR:-$(debian_mirror "$suite" | head -n 1)}
  [ -n "$mirror" ] || rootfs_die "no Debian package source for $suite is configured for apt: set MIRROR"
  mkdir -p "$(dirname "$out")"
  work=$(mktemp -d "$(dirname "$out")/rootfs.XXXXXX")
  echo "debian-rootfs: debootstrap $suite ($arch) with $packages" >&2
  if ! debootstrap --variant=minbase --arch="$arch" --include="$packages" \
    "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    rm -rf "$work"
    rootfs_die "debootstrap failed"
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
  echo "debian-rootfs: wrote $out ($(du -h "$out" | cut -f1))" >&2
}

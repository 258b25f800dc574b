# scripts/lib/fetch.sh: sourced by the scripts that need files from Debian packages.
# vf_fetch PKG: the .deb into $VF_CACHE_DIR/debs (apt-get download; nothing is installed), unpacked
# with dpkg -x into $VF_CACHE_DIR/pkg/PKG (atomically: into .tmp, then mv). Where the apt lists
# are empty (a fresh machine), `apt-get update` runs once, only when a download fails (with sudo
# when not root). Idempotent; with several cached versions the newest is used.
VF_CACHE_DIR=${VF_CACHE_DIR:-$HOME/.cache/vaefarm}

vf_fetch() {
  local pkg=$1 cache=$VF_CACHE_DIR
  mkdir -p "$cache/debs" "$cache/pkg"
  [ -d "$cache/pkg/$pkg" ] && return 0
  if ! ls "$cache/debs/$pkg"_*.deb >/dev/null 2>&1; then
    if ! (cd "$cache/debs" && apt-get download "$pkg" >/dev/null 2>&1); then
      local sudo=""
      [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo=sudo
      $sudo apt-get update -qq >/dev/null || {
        echo "fetch: apt-get download $pkg failed and apt-get update could not run (need root?)" >&2
        return 1; }
      (cd "$cache/debs" && apt-get download "$pkg" >/dev/null 2>&1) || {
        echo "fetch: apt-get download $pkg failed: is Debian's archive reachable?" >&2; return 1; }
    fi
  fi
  rm -rf "$cache/pkg/$pkg.tmp"
  mkdir -p "$cache/pkg/$pkg.tmp"
  dpkg -x "$(ls "$cache/debs/$pkg"_*.deb | sort -V | tail -1)" "$cache/pkg/$pkg.tmp"
  mv "$cache/pkg/$pkg.tmp" "$cache/pkg/$pkg"
}

# vf_deb_version PKG: the version of the cached .deb (from its name, pkg_VERSION_arch.deb).
vf_deb_version() {
  basename "$(ls "$VF_CACHE_DIR/debs/$1"_*.deb | sort -V | tail -1)" | cut -d_ -f2 | sed 's/%3a/:/'
}

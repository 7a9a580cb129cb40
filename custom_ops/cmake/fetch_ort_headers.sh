#!/usr/bin/env bash
# Downloads onnxruntime's C/C++ headers from Debian's libonnxruntime-dev package (trixie) into $1 without
# installing anything: the onnxruntime wheel ships no headers and bookworm has no onnxruntime package.
# Uses the apt mirror this machine is already configured with; only the suite changes.
set -euo pipefail
dest=${1:?usage: fetch_ort_headers.sh DEST_DIR}
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
  echo "fetch_ort_headers: apt-get/dpkg-deb not found; set ONNXRUNTIME_INCLUDE_DIR to a directory holding onnxruntime_cxx_api.h" >&2
  exit 1
}
uris=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
uris=${uris:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
  "$uris" >"$work/trixie.sources"
apt_opts=(-o "Dir::Etc::sourcelist=$work/trixie.sources" -o Dir::Etc::sourceparts=/dev/null
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::archives=$work/archives" -o APT::Sandbox::User=root)
mkdir -p "$work/lists/partial" "$work/archives/partial"
apt-get "${apt_opts[@]}" -qq update
(cd "$work" && apt-get "${apt_opts[@]}" -qq download libonnxruntime-dev)
dpkg-deb -x "$work"/libonnxruntime-dev_*.deb "$work/root"
# Publish atomically so a concurrent or interrupted build never sees a half-written header tree.
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.tmp.$$" && cp -r "$work/root/usr/include/onnxruntime" "$dest.tmp.$$"
rm -rf "$dest" && mv "$dest.tmp.$$" "$dest"
echo "fetch_ort_headers: onnxruntime headers in $dest"

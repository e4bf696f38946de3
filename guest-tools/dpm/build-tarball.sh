#!/bin/bash
#
# Build the DPM guest tools tarball:
#
#     build-tarball.sh OUTDIR  ->  OUTDIR/ibmvirt-dpm-guest-tools-<version>.tar.gz
#
# The tarball holds ibmvirt-dpm-guest-tools-<version>/ with install.sh and the
# usr/ tree; unpack it anywhere and run its install.sh with the image root.
# The version is the ibmvirt version from pyproject.toml (VERSION overrides).
# The build is reproducible: the same sources give the same bytes (sorted
# names, owner root, normalised modes, mtime SOURCE_DATE_EPOCH, else the time
# of the last commit that touched guest-tools/dpm, else 0; gzip without name
# or time stamp). Prints the path of the tarball.

set -eu
export LC_ALL=C

if (($# != 1)); then
    printf 'usage: %s OUTDIR\n' "${0##*/}" >&2
    exit 2
fi
outdir=$1

case ${BASH_SOURCE[0]} in
*/*) src=${BASH_SOURCE[0]%/*} ;;
*) src=. ;;
esac
src=$(cd "$src" && pwd)
repo=$(cd "$src/../.." && pwd)

version=${VERSION:-}
if [[ -z $version && -r $repo/pyproject.toml ]]; then
    re='^version[[:space:]]*=[[:space:]]*"([^"]+)"'
    while IFS= read -r line; do
        if [[ $line =~ $re ]]; then
            version=${BASH_REMATCH[1]}
            break
        fi
    done <"$repo/pyproject.toml"
fi
if [[ ! $version =~ ^[A-Za-z0-9.+_-]+$ ]]; then
    printf '%s: cannot tell the version (set VERSION)\n' "${0##*/}" >&2
    exit 1
fi

mtime=${SOURCE_DATE_EPOCH:-}
if [[ -z $mtime ]]; then
    mtime=$(git -C "$repo" log -1 --format=%ct -- guest-tools/dpm 2>/dev/null || true)
fi
mtime=${mtime:-0}
if [[ ! $mtime =~ ^[0-9]+$ ]]; then
    printf '%s: SOURCE_DATE_EPOCH must be a number of seconds\n' "${0##*/}" >&2
    exit 1
fi

name=ibmvirt-dpm-guest-tools-$version
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# Stage with the installer itself, which sets the file modes.
install -d -m 0755 "$stage/$name"
"$src/install.sh" "$stage/$name" >/dev/null
# The enable symlink belongs to the image, not to the tarball.
rm -rf "${stage:?}/$name/etc"
install -m 0755 "$src/install.sh" "$stage/$name/install.sh"

mkdir -p "$outdir"
out=$(cd "$outdir" && pwd)/$name.tar.gz
tar --format=ustar --sort=name --mtime="@$mtime" --owner=0 --group=0 --numeric-owner \
    --mode='u+rwX,go+rX,go-w' -C "$stage" -cf - "$name" | gzip -9 -n >"$out.tmp"
mv "$out.tmp" "$out"
printf '%s\n' "$out"

#!/bin/bash
#
# Install the ibmvirt DPM guest tools into an image root and enable them.
#
#     install.sh ROOT        e.g. install.sh /mnt/image, or install.sh / inside
#                            the image being prepared
#
# Installs:
#   /usr/sbin/ibmvirt-dpm-netconfig                       0755
#   /usr/sbin/ibmvirt-dpm-setmac                          0755
#   /usr/lib/ibmvirt-dpm/dpm-guest-common.sh              0644
#   /usr/lib/systemd/system/ibmvirt-dpm-netconfig.service 0644
#   /usr/lib/udev/rules.d/80-ibmvirt-dpm-setmac.rules     0644
# and enables the unit the way `systemctl enable` does (a symlink in
# /etc/systemd/system/multi-user.target.wants), so it works on an image root
# that is not running. Running it again gives the same result.

set -eu
export LC_ALL=C

usage() {
    printf 'usage: %s ROOT\n\nInstalls the DPM guest tools into the image root ROOT (/ for this system).\n' \
        "${0##*/}"
}

if (($# != 1)); then
    usage >&2
    exit 2
fi
case $1 in
-h | --help)
    usage
    exit 0
    ;;
esac

root=${1%/}
if [[ -n $root && ! -d $root ]]; then
    printf '%s: %s is not a directory\n' "${0##*/}" "$1" >&2
    exit 1
fi

case ${BASH_SOURCE[0]} in
*/*) src=${BASH_SOURCE[0]%/*} ;;
*) src=. ;;
esac

unit=ibmvirt-dpm-netconfig.service
files=(
    "0755 usr/sbin/ibmvirt-dpm-netconfig"
    "0755 usr/sbin/ibmvirt-dpm-setmac"
    "0644 usr/lib/ibmvirt-dpm/dpm-guest-common.sh"
    "0644 usr/lib/systemd/system/$unit"
    "0644 usr/lib/udev/rules.d/80-ibmvirt-dpm-setmac.rules"
)

for entry in "${files[@]}"; do
    mode=${entry%% *}
    file=${entry#* }
    if [[ ! -f $src/$file ]]; then
        printf '%s: %s is missing next to this script\n' "${0##*/}" "$file" >&2
        exit 1
    fi
    install -d -m 0755 "$root/${file%/*}"
    install -m "$mode" "$src/$file" "$root/$file"
    printf 'installed %s\n' "/$file"
done

wants=$root/etc/systemd/system/multi-user.target.wants
install -d -m 0755 "$wants"
ln -sfn "/usr/lib/systemd/system/$unit" "$wants/$unit"
printf 'enabled %s\n' "$unit"

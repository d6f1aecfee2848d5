#!/bin/sh
# First boot on Raspberry Pi OS: install the bundle copied onto the SD card's boot partition, then
# delete it there. The boot partition is FAT, readable by anyone holding the card and without
# file permissions, so the device key must not stay on it once installed in /etc/edge (0600).
#
# On the card (mounted on the computer that wrote it): the bundle folder as `edge-bundle/` and this
# script as `edge-firstboot.sh`, both at the top of the boot partition. Hook it from cloud-init's
# user-data (`runcmd: [[sh, /boot/firmware/edge-firstboot.sh]]`, images with cloud-init) or from
# the Imager's firstrun.sh (`sh /boot/firmware/edge-firstboot.sh` before its last line); docs/pages/fleet.md,
# "First boot on a Raspberry Pi", says it step by step.
#
# Options after the script's name go to install.sh (tests: --root DIR). $EDGE_BOOT overrides where
# the boot partition is mounted (default /boot/firmware, else /boot on older images).
set -eu

BOOT=${EDGE_BOOT:-/boot/firmware}
[ -d "$BOOT" ] || BOOT=/boot
BUNDLE="$BOOT/edge-bundle"
if [ ! -f "$BUNDLE/install.sh" ]; then
	echo "edge-firstboot: no bundle at $BUNDLE, nothing to install"
	exit 0
fi

# Install from a copy on the root filesystem (FAT keeps no modes; the wheels are read many times).
WORK=$(mktemp -d "${TMPDIR:-/tmp}/edge-bundle.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cp -R "$BUNDLE/." "$WORK/"
sh "$WORK/install.sh" "$@"
rm -rf "$BUNDLE"
echo "edge-firstboot: installed; $BUNDLE removed from the boot partition"

#!/bin/sh
# First boot: install the device's bundle once, without leaving its key on the card's FAT partition.
#
# Raspberry Pi: `edge fleet image` / `edge fleet card` put the bundle folder as `edge-bundle/` and this
# script as `edge-firstboot.sh` at the top of the boot partition, and hook
# `sh /boot/firmware/edge-firstboot.sh` from cloud-init's user-data `runcmd` or from firstrun.sh.
# Jetson: `edge fleet jetson-rootfs` puts the bundle in /var/lib/edge-firstboot/edge-bundle/ and this
# script beside it, run once by edge-firstboot.service. docs/pages/fleet.md says both.
#
# Steps, in order:
#   move     the bundle off the boot partition into /var/lib/edge-firstboot/ (root's, 0700): FAT
#            has no permissions and the bundle holds the device key, so this comes before anything
#   install  its install.sh: the package, /etc/edge, edge.service enabled and started
#   check    edge.service is enabled
# then a marker (/var/lib/edge-firstboot/done) and the bundle removed. With the marker, or with no
# bundle, it does nothing. Each run that has work writes edge-firstboot.log on the boot partition,
# readable from any computer: the steps, and a failed step's output with key material removed.
# After a failure the bundle waits in /var/lib/edge-firstboot/; run this script again to retry.
#
# Options go to install.sh (tests: --root DIR, which also roots /var/lib/edge-firstboot). $EDGE_BOOT:
# where the boot partition is mounted (default /boot/firmware, else /boot); $EDGE_FIRSTBOOT_LOG: the
# log (default $EDGE_BOOT/edge-firstboot.log).
set -eu

ROOT=""
previous=""
for arg in "$@"; do # --root is install.sh's option; the staging folder follows it
	case "$previous" in --root) ROOT=$arg ;; esac
	case "$arg" in --root=*) ROOT=${arg#--root=} ;; esac
	previous=$arg
done

BOOT=${EDGE_BOOT:-/boot/firmware}
[ -d "$BOOT" ] || BOOT=/boot
FROM="$BOOT/edge-bundle"
STAGE="$ROOT/var/lib/edge-firstboot"
BUNDLE="$STAGE/edge-bundle"
DONE="$STAGE/done"
LOG=${EDGE_FIRSTBOOT_LOG:-$BOOT/edge-firstboot.log}
umask 022 # install.sh makes the venv and /etc/edge readable to the edge user (it sets the keys' modes)

if [ -f "$DONE" ]; then
	echo "edge-firstboot: done on $(cat "$DONE"), nothing to install"
	[ ! -e "$FROM" ] || echo "edge-firstboot: $FROM left as is (to install it: sudo sh $FROM/install.sh)"
	exit 0
fi
if [ ! -d "$FROM" ] && [ ! -d "$BUNDLE" ]; then
	echo "edge-firstboot: no bundle at $FROM or $BUNDLE, nothing to install"
	exit 0
fi

OUTPUT=$(mktemp "${TMPDIR:-/tmp}/edge-firstboot.XXXXXX")
trap 'rm -f "$OUTPUT"' EXIT
{ true >"$LOG"; } 2>/dev/null || LOG=/dev/null # a read-only boot partition: stdout (journal) only
chmod 0644 "$LOG" 2>/dev/null || true

say() { # a line to stdout and the log
	echo "edge-firstboot: $*"
	echo "edge-firstboot: $*" >>"$LOG" 2>/dev/null || true
}

redact() { # key material out: PEM blocks, and any long base64 run (a key printed some other way)
	sed -E -e '/-----BEGIN/,/-----END/d' -e 's|[A-Za-z0-9+/=]{40,}|[removed]|g'
}

step() { # step NAME COMMAND...: run it with its output kept aside; on failure log it and stop
	name=$1
	shift
	set +e
	(
		set -e
		"$@"
	) >"$OUTPUT" 2>&1
	status=$?
	set -e
	redact <"$OUTPUT"
	if [ "$status" -ne 0 ]; then
		say "step $name failed (status $status); its last lines, key material removed:"
		redact <"$OUTPUT" | tail -n 80 | sed 's/^/    /' >>"$LOG" 2>/dev/null || true
		if [ -f "$BUNDLE/install.sh" ]; then
			say "the bundle waits in $BUNDLE (root only); to retry on the board: sudo ${EDGE_FIRSTBOOT_LOG:+EDGE_FIRSTBOOT_LOG=$LOG }sh $0"
		fi
		exit 1
	fi
	say "step $name: ok"
}

move() { # copy to the root filesystem, then delete from FAT (a copy interrupted is redone next time)
	mkdir -p "$ROOT/var/lib"
	umask 077 # the staged bundle is root's alone (this runs in a subshell: the umask stays here)
	mkdir -p "$STAGE"
	chmod 0700 "$STAGE"
	rm -rf "$BUNDLE.part"
	mkdir "$BUNDLE.part"
	cp -R "$FROM/." "$BUNDLE.part/"
	rm -rf "$BUNDLE"
	mv "$BUNDLE.part" "$BUNDLE"
	rm -rf "$FROM"
	sync
	echo "bundle moved from $FROM to $BUNDLE"
}

install_bundle() {
	sh "$BUNDLE/install.sh" "$@"
}

check() { # the symlink `systemctl enable` makes (install.sh makes it under --root too)
	unit="$ROOT/etc/systemd/system/multi-user.target.wants/edge.service"
	[ -L "$unit" ] || {
		echo "$unit missing: edge.service is not enabled"
		return 1
	}
	echo "edge.service enabled"
}

say "started $(date -u +%Y-%m-%dT%H:%M:%SZ)"
if [ -d "$FROM" ]; then # even an incomplete bundle: whatever it holds leaves FAT (install then says what is missing)
	step move move
fi
step install install_bundle "$@"
step check check
date -u +%Y-%m-%dT%H:%M:%SZ >"$DONE"
rm -rf "$BUNDLE"
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then # install.sh started it without waiting (--no-block)
	STATE="edge.service $(systemctl show -p ActiveState --value edge.service 2>/dev/null || echo unknown)"
else
	STATE="edge.service starts at the next boot"
fi
say "installed; $STATE (journalctl -u edge on the board says more); bundle removed from $STAGE"

#!/bin/sh
# Install (or upgrade: a re-run with a newer bundle) the edge appliance from the bundle folder this
# script sits in, offline. The folder, as `edge fleet provision` writes it:
#   install.sh  edge.toml  edge.service  bundle.json  wheels/*.whl
#   certs/ca.crt  certs/device.crt  certs/device.key  certs/fleet-signing.pub  certs/box.key
#
#   sudo sh install.sh             on the board (firstboot.sh runs it at first boot)
#   sh install.sh --root DIR       everything under DIR as if it were /: tests and image builds
#
# What it does: creates the system user `edge` (group `video` for cameras), /opt/edge/venv with the
# package installed from wheels/ only, /etc/edge (keys 0600, owned by edge), /var/lib/edge, and the
# systemd unit, enabled. With --root DIR the user is created in DIR's own /etc/passwd when there is
# one and we are root (useradd --root), else files keep the caller's owner; "enabled" is the
# multi-user.target.wants symlink `systemctl enable` would make; nothing is started.
# The venv is made with the Python that runs here ($PYTHON, default python3): for a root of another
# architecture (an arm64 image on x86), run the script inside that root (chroot DIR sh install.sh).
set -eu

REQUIREMENT="edge[litert]" # the package and its device dependencies, with the LiteRT interpreter
PYTHON=${PYTHON:-python3}
ROOT=""

die() {
	echo "install.sh: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case "$1" in
	--root)
		[ $# -ge 2 ] || die "--root needs a folder"
		ROOT=$2
		shift 2
		;;
	--root=*)
		ROOT=${1#--root=}
		shift
		;;
	-h | --help)
		sed -n '2,16p' "$0"
		exit 0
		;;
	*) die "unknown option $1 (usage: install.sh [--root DIR])" ;;
	esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
if [ -n "$ROOT" ]; then
	mkdir -p "$ROOT"
	ROOT=$(cd "$ROOT" && pwd)
fi

for f in edge.toml edge.service bundle.json certs/ca.crt certs/device.crt certs/device.key \
	certs/fleet-signing.pub certs/box.key; do
	[ -f "$HERE/$f" ] || die "$HERE/$f is missing: not a complete bundle (edge fleet provision writes one)"
done
ls "$HERE"/wheels/*.whl >/dev/null 2>&1 || die "no wheels in $HERE/wheels"
[ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || die "run as root (sudo sh install.sh), or into a folder with --root DIR"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (install python3 and python3-venv)"

BOARD=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["board"])' "$HERE/bundle.json") ||
	die "$HERE/bundle.json has no board"
echo "install.sh: board $BOARD, into ${ROOT:-/}"

# --- the edge user -------------------------------------------------------------------------------
# Its uid:gid are read back from the target's passwd, so that chown works under --root too.
OWNER=""
if [ "$(id -u)" = 0 ] && [ -f "$ROOT/etc/passwd" ]; then
	set -- # useradd/usermod options for the target
	[ -z "$ROOT" ] || set -- --root "$ROOT"
	if ! grep -q '^edge:' "$ROOT/etc/passwd"; then
		useradd "$@" --system --user-group --home-dir /var/lib/edge --no-create-home \
			--shell /usr/sbin/nologin --comment "edge appliance" edge
	fi
	if grep -q '^video:' "$ROOT/etc/group"; then
		usermod "$@" -a -G video edge
	fi
	OWNER=$(awk -F: '$1 == "edge" { print $3 ":" $4 }' "$ROOT/etc/passwd")
else
	echo "install.sh: no user created (not root, or $ROOT/etc/passwd missing): files keep the caller's owner"
fi

own() { # own MODE PATH...: the mode, and edge as owner where there is an edge user
	mode=$1
	shift
	chmod "$mode" "$@"
	[ -z "$OWNER" ] || chown "$OWNER" "$@"
}

# --- the venv ------------------------------------------------------------------------------------
VENV="$ROOT/opt/edge/venv"
case "$BOARD" in
pi | jetson) SYSTEM_SITE="--system-site-packages" ;; # apt's python3-picamera2, JetPack's GStreamer cv2
*) SYSTEM_SITE="" ;;
esac
if [ ! -x "$VENV/bin/python" ]; then
	"$PYTHON" -m venv $SYSTEM_SITE "$VENV" || die "cannot create $VENV (apt install python3-venv)"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
	--find-links "$HERE/wheels" --upgrade "$REQUIREMENT"
if [ "$BOARD" = jetson ]; then
	# PyPI's OpenCV has no GStreamer: drop it so the venv imports JetPack's python3-opencv (gst: sources).
	"$VENV/bin/python" -m pip uninstall --quiet --yes opencv-python-headless
fi

# --- /etc/edge and the state folder --------------------------------------------------------------
ETC="$ROOT/etc/edge"
mkdir -p "$ETC" "$ROOT/var/lib/edge"
chmod 0750 "$ETC" # root's, readable by the edge group
[ -z "$OWNER" ] || chown "0:${OWNER#*:}" "$ETC"
for f in edge.toml bundle.json certs/ca.crt certs/device.crt certs/fleet-signing.pub; do
	cp "$HERE/$f" "$ETC/${f#certs/}.new"
	chmod 0644 "$ETC/${f#certs/}.new"
	mv -f "$ETC/${f#certs/}.new" "$ETC/${f#certs/}"
done
for f in device.key box.key; do # private: written 0600 from the start, never readable by others
	(
		umask 077
		cp "$HERE/certs/$f" "$ETC/$f.new"
	)
	own 0600 "$ETC/$f.new"
	mv -f "$ETC/$f.new" "$ETC/$f"
done
own 0750 "$ROOT/var/lib/edge"

# --- the unit ------------------------------------------------------------------------------------
UNITS="$ROOT/etc/systemd/system"
mkdir -p "$UNITS/multi-user.target.wants"
cp "$HERE/edge.service" "$UNITS/edge.service.new"
chmod 0644 "$UNITS/edge.service.new"
mv -f "$UNITS/edge.service.new" "$UNITS/edge.service"
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable edge.service
	# --no-block: at first boot this runs inside a unit itself; the restart picks up an upgrade.
	systemctl restart --no-block edge.service
	echo "install.sh: edge.service enabled and (re)started: journalctl -u edge -f"
else
	ln -sfn /etc/systemd/system/edge.service "$UNITS/multi-user.target.wants/edge.service"
	echo "install.sh: edge.service enabled (starts at the next boot)"
fi
"$VENV/bin/edge" --version

#!/usr/bin/env bash
# The first-boot chain of a flashed Raspberry Pi card, booted as a whole arm64 system under QEMU
# (qemu-system-aarch64 -M virt, pure emulation here: no KVM). Too slow for CI: run it by hand before
# resolving a change to `edge fleet image`, firstboot.sh, install.sh, the unit or the bundle.
#
#   sudo scripts/check_boot_arm64.sh [--variant cloud-init|firstrun|both]    (default both)
#
# For each variant:
# 1. a small Debian bookworm arm64 root (debootstrap: systemd, python3, cloud-init, Debian's arm64
#    kernel and initrd), cached in $CACHE and reused, laid out as a card like Raspberry Pi OS's:
#    MBR, partition 1 FAT32 labelled bootfs mounted at /boot/firmware (fstab), partition 2 ext4
#    (mkfs.ext4 -d, no loop mount). On the boot partition, the Imager-style customisation of the
#    variant:
#      cloud-init  user-data (hostname, user), meta-data, network-config; cmdline.txt plain
#      firstrun    cmdline.txt with systemd.run=/boot/firmware/firstrun.sh (as Imager writes it on
#                  Bookworm) and an Imager-like firstrun.sh that deletes itself and its cmdline entry
# 2. on this host: `edge fleet init`, `edge fleet broker-config` run by a Mosquitto (its devices'
#    TLS listener reached by the guest as 10.0.2.2, QEMU's user network), `edge fleet provision
#    --board pi` with the broker as mqtts://10.0.2.2:PORT; the bundle's edge.toml gets a clip
#    copied into the image as its camera (file:, the real loop), a fixed threshold and the short
#    range detector (as scripts/check_arm64.sh runs it)
# 3. `edge fleet image --base disk.img --bundle BUNDLE --out card.img`, then boot card.img with
#    -kernel/-initrd and the kernel command line read from the card's cmdline.txt, as the Pi's
#    firmware would (again after each reboot: firstrun.sh's reboot ends QEMU, -no-reboot), and wait
#    for the device's retained `online` status over TLS, push a gallery (`edge fleet gallery
#    push`, the person in the clip, enrolled on this host from other photos), wait for a match event
# Each stage prints its elapsed time. Exit 0 only when every variant asked for reached both.
# On failure: the last lines of the serial console and the boot partition's edge-firstboot.log.
#
# What the emulation changes, on purpose (docs/pages/fleet.md, "The emulated boot"): no Pi firmware
# (QEMU loads the kernel; cmdline.txt is read by this script, not the firmware; root=/dev/vda2,
# console=ttyAMA0); a Debian root, not Raspberry Pi OS (no raspberrypi-sys-mods, userconf or
# picamera2; Python 3.11 also for the cloud-init variant, whereas Trixie has 3.13); a drop-in
# gives edge.service longer start and watchdog limits (emulation runs the models tens of times
# slower than a Pi); journald copies the log to the serial console.
#
# Environment: CACHE (default /var/tmp/edge-boot-arm64: the root, kernel, wheels), MIRROR (default:
# the Debian URI in apt's sources), EDGE_TEST_DATA (default ../shared/data), BOOT_TIMEOUT (seconds
# to `online` per variant, default 3600), MATCH_TIMEOUT (seconds from the gallery push to a match,
# default 1800), KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
CACHE=${CACHE:-/var/tmp/edge-boot-arm64}
DATA=$(cd "${EDGE_TEST_DATA:-$REPO/../shared/data}" 2>/dev/null && pwd) || DATA=""
BOOT_TIMEOUT=${BOOT_TIMEOUT:-3600}
MATCH_TIMEOUT=${MATCH_TIMEOUT:-1800}
PY=$REPO/.venv/bin/python
EDGE=$REPO/.venv/bin/edge
SITE=check
PERSON=marco_antonio_barrera # the slideshow's first two seconds
CLIP_REPEATS=20              # those 50 frames, 20 times: 40 s of clip, new photo every second
VARIANT=both

die() {
	echo "check_boot_arm64.sh: $*" >&2
	exit 1
}
T0=$(date +%s)
stage() { # stage NAME: the previous stage's time, then this one's start
	local now
	now=$(date +%s)
	printf '== [%5ds] %s\n' "$((now - T0))" "$*" >&2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--variant) VARIANT=${2:-}; shift 2 ;;
	--variant=*) VARIANT=${1#--variant=}; shift ;;
	-h | --help) sed -n '2,40p' "$0"; exit 0 ;;
	*) die "unknown option $1 (usage: $0 [--variant cloud-init|firstrun|both])" ;;
	esac
done
case "$VARIANT" in
cloud-init | firstrun) VARIANTS=("$VARIANT") ;;
both) VARIANTS=(cloud-init firstrun) ;;
*) die "--variant $VARIANT: cloud-init, firstrun or both" ;;
esac

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it): sudo $0"
[ -x "$PY" ] && [ -x "$EDGE" ] || die "no $REPO/.venv: run scripts/setup.sh first"
[ -n "$DATA" ] && [ -f "$DATA/MANIFEST.md" ] || die "face data not found (set EDGE_TEST_DATA or check out ../shared)"
for tool in qemu-system-aarch64 qemu-aarch64-static debootstrap mosquitto sfdisk mkfs.vfat mkfs.ext4 mcopy mtype; do
	command -v "$tool" >/dev/null ||
		die "$tool not found: apt-get install qemu-system-arm qemu-user-static debootstrap mosquitto fdisk dosfstools mtools"
done
"$EDGE" fleet image --help >/dev/null 2>&1 || die "this checkout has no 'edge fleet image'"

WORK=$(mktemp -d /var/tmp/edge-boot-arm64-run.XXXXXX)
PIDS=() # killed at exit
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	if [ -n "${KEEP:-}" ]; then echo "work folder kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- 1. the arm64 root, kernel and initrd (cached) ---------------------------------------------------
ROOT=$CACHE/root
if [ ! -f "$ROOT/.edge-boot-ready" ]; then
	stage "making the arm64 Debian bookworm root in $ROOT (debootstrap under qemu-user, once)"
	if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
		mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	fi
	if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
		magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
		mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
		echo ":qemu-aarch64:M::$magic:$mask:$(command -v qemu-aarch64-static):F" >/proc/sys/fs/binfmt_misc/register
	fi
	MIRROR=${MIRROR:-$(awk '/^URIs:/ { print $2; exit } /^deb / { print $2; exit }' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true)}
	MIRROR=${MIRROR:-http://deb.debian.org/debian}
	mkdir -p "$CACHE"
	if [ ! -f "$ROOT.partial/.debootstrap-done" ]; then
		rm -rf "$ROOT.partial"
		debootstrap --arch=arm64 --variant=minbase \
			--include=systemd,systemd-sysv,udev,dbus,kmod,iproute2,procps,passwd,python3,python3-venv,python3-pip,ca-certificates,libgl1,libglib2.0-0,cloud-init,python3-cffi-backend \
			bookworm "$ROOT.partial" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
			{ tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
		# The kernel after an initramfs config that lists the modules QEMU's virt machine needs:
		# Debian's default (MODULES=most) ran over 10 minutes under qemu-user here, unfinished.
		mkdir -p "$ROOT.partial/etc/initramfs-tools/conf.d"
		printf 'MODULES=list\nCOMPRESS=gzip\n' >"$ROOT.partial/etc/initramfs-tools/conf.d/edge-check.conf"
		printf 'virtio_pci\nvirtio_mmio\nvirtio_blk\nvirtio_net\next4\nvfat\nnls_cp437\nnls_ascii\n' \
			>"$ROOT.partial/etc/initramfs-tools/modules"
		chroot "$ROOT.partial" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold linux-image-arm64 \
			>>"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log" >&2; die "linux-image-arm64 failed"; }
		touch "$ROOT.partial/.debootstrap-done"
	fi
	R=$ROOT.partial
	# As Raspberry Pi OS: the boot partition by label at /boot/firmware, the root by label.
	mkdir -p "$R/boot/firmware" "$R/srv/edge-check"
	cat >"$R/etc/fstab" <<-'EOF'
		LABEL=rootfs    /               ext4  defaults,noatime  0 1
		LABEL=bootfs    /boot/firmware  vfat  defaults          0 2
	EOF
	echo debian >"$R/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n' >"$R/etc/hosts"
	# Wired network by DHCP (Raspberry Pi OS brings eth0 up by itself; here systemd-networkd).
	cat >"$R/etc/systemd/network/20-wired.network" <<-'EOF'
		[Match]
		Name=en* eth*

		[Network]
		DHCP=yes
	EOF
	chroot "$R" systemctl enable systemd-networkd.service >/dev/null 2>&1
	# cloud-init reads the NoCloud seed from the FAT partition labelled bootfs, as on Trixie images
	# (a variant without user-data gets /etc/cloud/cloud-init.disabled in its copy of the root).
	cat >"$R/etc/cloud/cloud.cfg.d/99-edge-check.cfg" <<-'EOF'
		datasource_list: [NoCloud, None]
		datasource:
		  NoCloud:
		    fs_label: bootfs
	EOF
	# The emulation's own differences: the log on the serial console, and the unit's start and
	# watchdog limits (sized for a Pi) widened for a CPU emulated tens of times slower.
	mkdir -p "$R/etc/systemd/journald.conf.d" "$R/etc/systemd/system/edge.service.d"
	printf '[Journal]\nForwardToConsole=yes\nTTYPath=/dev/ttyAMA0\nMaxLevelConsole=info\n' \
		>"$R/etc/systemd/journald.conf.d/console.conf"
	printf '[Service]\nTimeoutStartSec=1800\nWatchdogSec=900\n' >"$R/etc/systemd/system/edge.service.d/emulated.conf"
	echo 'root:edge' | chroot "$R" chpasswd
	ls "$R"/boot/vmlinuz-* "$R"/boot/initrd.img-* >/dev/null 2>&1 || die "no kernel or initrd in $R/boot"
	touch "$R/.edge-boot-ready"
	rm -rf "$ROOT"
	mv "$R" "$ROOT"
fi
KERNEL=$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -1)
INITRD=$(ls "$ROOT"/boot/initrd.img-* | sort -V | tail -1)
stage "arm64 root ready: $(basename "$KERNEL"), $(du -sm "$ROOT" | cut -f1) MB"

# --- 2. the fleet, its broker, the person's gallery and the clip ----------------------------------------
stage "edge fleet init, edge fleet broker-config, Mosquitto with the fleet's TLS listeners"
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
CENTRAL_PORT=$(free_port)
FLEET=$WORK/fleet
"$EDGE" fleet init "$FLEET" >/dev/null
# QEMU's user network takes the guest's connections to 10.0.2.2 to this host's 127.0.0.1: the
# devices' listener binds loopback, and its certificate names 10.0.2.2 as the guest dials it.
"$EDGE" fleet broker-config --fleet "$FLEET" --ip 10.0.2.2 --ip 127.0.0.1 --host localhost \
	--port "$PORT" --bind 127.0.0.1 --central-port "$CENTRAL_PORT" \
	--installed-at "$WORK/broker" --out "$WORK/broker" >/dev/null
{
	cat "$WORK/broker/edge.conf"
	printf 'user root\npersistence false\nlog_dest stderr\nlog_type all\n'
} >"$WORK/mosquitto.conf"
mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
	"$PY" -c "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" "$CENTRAL_PORT" 2>/dev/null && break
	sleep 0.2
done

mapfile -t ENROLL < <(awk -F, -v p="$PERSON" -v d="$DATA" '
	NR == FNR { if (FNR > 1) shown[$6] = 1; next }
	$2 == p && !($1 in shown) { print d "/" $1 }
' "$DATA/videos/lfw_slideshow.csv" "$DATA/identities.csv")
[ "${#ENROLL[@]}" -gt 0 ] || die "no photo of $PERSON outside the slideshow in $DATA/identities.csv"
"$EDGE" enroll --gallery "$WORK/gallery.sqlite" --name "$PERSON" --id "$PERSON" "${ENROLL[@]}" >/dev/null 2>"$WORK/enroll.log" ||
	{ tail -5 "$WORK/enroll.log" >&2; die "edge enroll failed"; }
# The clip: the slideshow's first 50 frames (two photos of $PERSON, none of them enrolled), repeated,
# so that a match can come from whichever frame the loop is at when the gallery arrives.
"$PY" - "$DATA/videos/lfw_slideshow.mp4" "$WORK/clip.mp4" "$CLIP_REPEATS" <<'EOF'
import sys
import cv2
src, dst, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
cap = cv2.VideoCapture(src)
frames = []
while len(frames) < 50:
    ok, frame = cap.read()
    if not ok:
        break
    frames.append(frame)
assert len(frames) == 50, f"{src}: {len(frames)} frames"
h, w = frames[0].shape[:2]
out = cv2.VideoWriter(dst, cv2.VideoWriter_fourcc(*"mp4v"), cap.get(cv2.CAP_PROP_FPS) or 25, (w, h))
for _ in range(repeats):
    for frame in frames:
        out.write(frame)
out.release()
EOF

# --- 3. per variant: the base card, edge fleet image, the boot, online, a match ---------------------
SECTOR=512
BOOT_START=8192      # 4 MiB, as Raspberry Pi OS images
BOOT_SECTORS=1048576 # 512 MiB FAT32 (Raspberry Pi OS: 512 MiB since Bookworm)
ROOT_MB=4096

base_card() { # base_card VARIANT OUT: a card as Imager leaves it, before `edge fleet image`
	local variant=$1 out=$2 dir=$WORK/$1
	local fat=$dir/boot.fat rootimg=$dir/root.ext4 bootdir=$dir/bootfs
	mkdir -p "$bootdir"
	local cmdline="console=ttyAMA0 root=/dev/vda2 rootfstype=ext4 fsck.repair=yes rootwait"
	if [ "$variant" = firstrun ]; then
		# Imager (Bookworm): cmdline.txt runs firstrun.sh once, then the script removes both.
		cmdline+=" systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target"
		cat >"$bootdir/firstrun.sh" <<-'EOF'
			#!/bin/bash

			set +e

			CURRENT_HOSTNAME=`cat /etc/hostname | tr -d " \t\n\r"`
			echo edge-check >/etc/hostname
			sed -i "s/127.0.1.1.*$CURRENT_HOSTNAME/127.0.1.1\tedge-check/g" /etc/hosts
			FIRSTUSER=`getent passwd 1000 | cut -d: -f1`
			if [ -z "$FIRSTUSER" ]; then
			   useradd -m -u 1000 -s /bin/bash fieldops
			fi
			echo 'fieldops:$5$edgecheck$4d9D2jEuCwfLa0IhLzYdN0Ul7j2R4i6Q5XGPOtkmf1C' | chpasswd -e
			rm -f /etc/localtime
			echo "Etc/UTC" >/etc/timezone
			ln -sf /usr/share/zoneinfo/Etc/UTC /etc/localtime
			rm -f /boot/firmware/firstrun.sh
			sed -i 's| systemd.run.*||g' /boot/firmware/cmdline.txt
			exit 0
		EOF
	else
		cat >"$bootdir/user-data" <<-'EOF'
			#cloud-config
			hostname: edge-check
			manage_etc_hosts: true
			users:
			  - name: fieldops
			    groups: users,video
			    shell: /bin/bash
			    lock_passwd: false
			    passwd: $5$edgecheck$4d9D2jEuCwfLa0IhLzYdN0Ul7j2R4i6Q5XGPOtkmf1C
			timezone: Etc/UTC
			locale: C.UTF-8
		EOF
		printf 'instance-id: edge-check-1\nlocal-hostname: edge-check\n' >"$bootdir/meta-data"
		cat >"$bootdir/network-config" <<-'EOF'
			network:
			  version: 2
			  ethernets:
			    wired:
			      match:
			        name: "en*"
			      dhcp4: true
			      optional: true
		EOF
	fi
	echo "$cmdline" >"$bootdir/cmdline.txt"
	printf '# config.txt: read by the Pi firmware, which QEMU does not emulate\narm_64bit=1\n' >"$bootdir/config.txt"
	rm -f "$fat"
	truncate -s $((BOOT_SECTORS * SECTOR)) "$fat"
	mkfs.vfat -F 32 -n bootfs "$fat" >/dev/null
	MTOOLS_SKIP_CHECK=1 mcopy -i "$fat" -s "$bootdir"/* ::/
	# The root: cloud-init off where the card has no user-data (Bookworm has no cloud-init).
	if [ "$variant" = firstrun ]; then touch "$ROOT/etc/cloud/cloud-init.disabled"; else rm -f "$ROOT/etc/cloud/cloud-init.disabled"; fi
	cp "$WORK/clip.mp4" "$ROOT/srv/edge-check/clip.mp4"
	chmod 0644 "$ROOT/srv/edge-check/clip.mp4"
	rm -f "$rootimg"
	mkfs.ext4 -q -L rootfs -d "$ROOT" "$rootimg" "${ROOT_MB}M"
	rm -f "$ROOT/etc/cloud/cloud-init.disabled" "$ROOT/srv/edge-check/clip.mp4"
	rm -f "$out"
	truncate -s $(((BOOT_START + BOOT_SECTORS) * SECTOR + ROOT_MB * 1024 * 1024)) "$out"
	printf 'label: dos\n%s,%s,c\n%s,,83\n' "$BOOT_START" "$BOOT_SECTORS" "$((BOOT_START + BOOT_SECTORS))" |
		sfdisk -q "$out"
	dd if="$fat" of="$out" bs=1M seek=$((BOOT_START * SECTOR / 1048576)) conv=notrunc status=none
	dd if="$rootimg" of="$out" bs=1M seek=$(((BOOT_START + BOOT_SECTORS) * SECTOR / 1048576)) conv=notrunc,sparse status=none
	rm -f "$fat" "$rootimg"
}

boot_offset() { # byte offset of partition 1 of the image $1
	sfdisk -d "$1" | awk -F'[=,]' '/^[^ ]+1 :/ { gsub(/ /, "", $2); print $2 * 512; exit }'
}
on_card() { # on_card IMAGE FILE: a file of the boot partition on stdout (nothing if absent)
	MTOOLS_SKIP_CHECK=1 mtype -i "$1@@$(boot_offset "$1")" "::/$2" 2>/dev/null || true
}

show_failure() { # show_failure VARIANT CARD
	echo "--- last lines of the serial console ($1) ---" >&2
	tail -40 "$WORK/$1/serial.log" 2>/dev/null | tr -d '\r' >&2 || true
	echo "--- edge-firstboot.log on the boot partition ---" >&2
	on_card "$2" edge-firstboot.log | tail -40 >&2
	echo "--- messages from the device ---" >&2
	tail -5 "$WORK/$1/events.log" 2>/dev/null >&2 || true
}

boot() { # boot VARIANT CARD: one QEMU run in the background, its kernel command line from cmdline.txt
	local cmdline
	cmdline=$(on_card "$2" cmdline.txt | tr -d '\r' | head -1)
	[ -n "$cmdline" ] || cmdline="console=ttyAMA0 root=/dev/vda2 rootwait"
	echo "=== boot $((BOOTS + 1)): $cmdline" >>"$WORK/$1/serial.log"
	qemu-system-aarch64 -M virt -cpu cortex-a72 -m 2G -smp 2 -no-reboot \
		-kernel "$KERNEL" -initrd "$INITRD" -append "$cmdline" \
		-drive "file=$2,format=raw,if=virtio" \
		-netdev user,id=net0 -device virtio-net-pci,netdev=net0 -device virtio-rng-pci \
		-display none -monitor none -serial "file:$WORK/$1/serial.part" >/dev/null 2>"$WORK/$1/qemu.err" &
	QEMU=$!
	PIDS+=("$QEMU")
	BOOTS=$((BOOTS + 1))
	BOOT_CMDLINES+=("$cmdline")
}
keep_booted() { # keep_booted VARIANT CARD: boot again after the guest's reboot ended QEMU; fails after 3 boots
	kill -0 "$QEMU" 2>/dev/null && return 0
	serial_sync "$1"
	[ "$BOOTS" -lt 3 ] || return 1
	stage "[$1] the guest rebooted (boot $BOOTS ended); booting again with the card's cmdline.txt"
	boot "$1" "$2"
}
serial_sync() { # the current boot's console appended to serial.log so far
	local v=$1
	[ -f "$WORK/$v/serial.part" ] || return 0
	cat "$WORK/$v/serial.part" >>"$WORK/$v/serial.log"
	: >"$WORK/$v/serial.part"
}

RESULTS=()
FAILED=0
run_variant() {
	local v=$1 t_start t_online t_match dev card base
	t_start=$(date +%s)
	dev=pi-$v
	mkdir -p "$WORK/$v"
	stage "[$v] edge fleet provision --board pi --arch aarch64 --broker mqtts://10.0.2.2:$PORT"
	WHEELS_FROM=()
	if ls "$CACHE"/wheels/*.whl >/dev/null 2>&1; then WHEELS_FROM=(--wheels-from "$CACHE/wheels"); fi
	"$EDGE" fleet provision --fleet "$FLEET" --site "$SITE" --device-id "$dev" --broker "mqtts://10.0.2.2:$PORT" \
		--board pi --arch aarch64 --out "$WORK/$v/bundle" "${WHEELS_FROM[@]}" >/dev/null
	mkdir -p "$CACHE/wheels"
	find "$WORK/$v/bundle/wheels" -name '*.whl' ! -name 'edge-*' -exec cp -f {} "$CACHE/wheels/" \;
	# The camera: the clip in the image, through the real loop; threshold and detector as check_arm64.sh.
	"$PY" - "$WORK/$v/bundle/edge.toml" <<-'EOF'
		import re, sys
		p = sys.argv[1]
		t = open(p).read()
		t, n = re.subn(r'(?m)^source = .*$', 'source = "file:/srv/edge-check/clip.mp4"  # check_boot_arm64.sh', t)
		assert n == 1, "no camera source line in edge.toml"
		t, n = re.subn(r'(?m)^(gallery = .*)$', r'\1\nthreshold = 0.5', t)
		assert n == 1, "no gallery line in edge.toml"
		t += '\n[models]\ndetector = "blazeface_short_range"\n'
		open(p, "w").write(t)
	EOF

	stage "[$v] the base card (MBR, FAT32 bootfs with the $v customisation, ext4 root by mkfs.ext4 -d)"
	base=$WORK/$v/disk.img
	card=$WORK/$v/card.img
	base_card "$v" "$base"
	stage "[$v] edge fleet image --base disk.img --bundle BUNDLE --out card.img"
	"$EDGE" fleet image --base "$base" --bundle "$WORK/$v/bundle" --out "$card" >"$WORK/$v/image.log" 2>&1 ||
		{ cat "$WORK/$v/image.log" >&2; RESULTS+=("$v: edge fleet image failed"); FAILED=1; return; }
	sed 's/^/   /' "$WORK/$v/image.log" >&2
	rm -f "$base"
	case "$v" in
	cloud-init) on_card "$card" user-data | grep -q edge-firstboot.sh ;;
	firstrun) on_card "$card" firstrun.sh | grep -q edge-firstboot.sh ;;
	esac || { RESULTS+=("$v: the card's hook does not run edge-firstboot.sh"); FAILED=1; return; }

	"$PY" "$REPO/scripts/boot_arm64_watch.py" --port "$CENTRAL_PORT" --fleet "$FLEET" --device "$SITE/$dev" \
		--out "$WORK/$v/events.log" 2>"$WORK/$v/watch.err" &
	PIDS+=($!)
	BOOTS=0
	BOOT_CMDLINES=()
	: >"$WORK/$v/serial.log"
	stage "[$v] qemu-system-aarch64 -M virt -cpu cortex-a72 -m 2G -smp 2 (TCG), waiting for 'online' over TLS"
	local t_boot deadline seen_login=0 seen_firstboot=0
	t_boot=$(date +%s)
	deadline=$((t_boot + BOOT_TIMEOUT))
	boot "$v" "$card"
	while ! grep -q "edge/$SITE/$dev/status .*\"state\": *\"online\"" "$WORK/$v/events.log" 2>/dev/null; do
		keep_booted "$v" "$card" || break
		if [ $seen_firstboot = 0 ] && grep -qa 'edge-firstboot\|install.sh: board' "$WORK/$v/serial.part" "$WORK/$v/serial.log" 2>/dev/null; then
			seen_firstboot=1
			stage "[$v] first boot: edge-firstboot.sh is running (serial console)"
		fi
		if [ $seen_login = 0 ] && grep -qa 'login:' "$WORK/$v/serial.part" "$WORK/$v/serial.log" 2>/dev/null; then
			seen_login=1
			stage "[$v] boot $BOOTS reached a login prompt"
		fi
		[ "$(date +%s)" -lt "$deadline" ] || break
		sleep 5
	done
	serial_sync "$v"
	if ! grep -q "edge/$SITE/$dev/status .*\"state\": *\"online\"" "$WORK/$v/events.log" 2>/dev/null; then
		stage "[$v] FAILED: no online status after $(($(date +%s) - t_boot)) s, $BOOTS boot(s)"
		show_failure "$v" "$card"
		RESULTS+=("$v: no online status within $BOOT_TIMEOUT s")
		FAILED=1
		kill "$QEMU" 2>/dev/null || true
		return
	fi
	t_online=$(date +%s)
	stage "[$v] ONLINE: retained status from $SITE/$dev over TLS, $((t_online - t_boot)) s after power-on ($BOOTS boot(s))"
	grep -m1 "edge/$SITE/$dev/status" "$WORK/$v/events.log" | cut -c1-300 | sed 's/^/   /' >&2

	local push pushed boots_pushed
	push_gallery() { # a push reaches a device that is connected: once per boot that came online
		stage "[$v] edge fleet gallery push ($PERSON), waiting for a match event"
		"$EDGE" fleet gallery push --gallery "$WORK/gallery.sqlite" --fleet "$FLEET" \
			--broker "mqtts://127.0.0.1:$CENTRAL_PORT" --wait "$MATCH_TIMEOUT" "$SITE/$dev" >"$WORK/$v/push.log" 2>&1 &
		push=$!
		PIDS+=("$push")
		pushed=0
		boots_pushed=$BOOTS
	}
	push_gallery
	deadline=$((t_online + MATCH_TIMEOUT))
	local reboot_line=0
	while ! grep -q "edge/$SITE/$dev/match " "$WORK/$v/events.log"; do
		serial_sync "$v"
		if [ $pushed = 0 ] && ! kill -0 "$push" 2>/dev/null; then
			pushed=1
			if wait "$push"; then
				stage "[$v] the device reported the pushed gallery"
			else
				stage "[$v] edge fleet gallery push failed:"
				sed 's/^/   /' "$WORK/$v/push.log" >&2
			fi
		fi
		# firstrun.sh reboots once its install has run, and a slow host can see `online` before
		# that: boot again, and push again once the new boot reports online
		kill -0 "$QEMU" 2>/dev/null || reboot_line=$(wc -l <"$WORK/$v/events.log")
		keep_booted "$v" "$card" || break
		if [ "$BOOTS" != "$boots_pushed" ] &&
			tail -n +$((reboot_line + 1)) "$WORK/$v/events.log" | grep -q "edge/$SITE/$dev/status .*\"state\": *\"online\""; then
			stage "[$v] ONLINE again after the reboot (boot $BOOTS)"
			kill "$push" 2>/dev/null || true
			push_gallery
		fi
		[ "$(date +%s)" -lt "$deadline" ] || break
		sleep 5
	done
	serial_sync "$v"
	if ! grep -q "edge/$SITE/$dev/match " "$WORK/$v/events.log"; then
		stage "[$v] FAILED: no match event $(($(date +%s) - t_online)) s after online"
		show_failure "$v" "$card"
		RESULTS+=("$v: online after $((t_online - t_boot)) s, no match event within $MATCH_TIMEOUT s")
		FAILED=1
		kill "$QEMU" 2>/dev/null || true
		return
	fi
	t_match=$(date +%s)
	stage "[$v] MATCH: $((t_match - t_online)) s after online"
	grep -m1 "edge/$SITE/$dev/match " "$WORK/$v/events.log" | cut -c1-400 | sed 's/^/   /' >&2
	local stats
	stats=$(grep -c "edge/$SITE/$dev/stats " "$WORK/$v/events.log" || true)
	# What the chain left behind: the bundle gone from the FAT partition, the log there if any.
	local left
	left=$(MTOOLS_SKIP_CHECK=1 mdir -b -i "$card@@$(boot_offset "$card")" ::/ 2>/dev/null | sed 's|^::/||' | tr '\n' ' ')
	stage "[$v] boot partition now: $left"
	kill "$QEMU" 2>/dev/null || true
	wait "$QEMU" 2>/dev/null || true
	RESULTS+=("$v: PASSED: online $((t_online - t_boot)) s after power-on ($BOOTS boot(s); the first with: ${BOOT_CMDLINES[0]}), match $((t_match - t_online)) s later; $stats stats windows; variant total $((t_match - t_start)) s")
}

for v in "${VARIANTS[@]}"; do
	run_variant "$v"
done
stage "done"
for r in "${RESULTS[@]}"; do echo "$r"; done
[ "$FAILED" = 0 ] && echo "PASSED: ${VARIANTS[*]}" || echo "FAILED"
exit "$FAILED"

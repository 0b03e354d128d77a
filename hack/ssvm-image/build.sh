#!/usr/bin/env bash
# Builds the SSVM image from Debian's archive: a bookworm minbase root file system with what the agent
# needs, Debian's cloud kernel and its initramfs, the ssvm-agent zipapp, sshd on 3922 and the boot unit
# that reads the boot arguments (/proc/cmdline) and the config disk. Cached outside the work tree, keyed
# by its inputs (this recipe, the agent's sources, the suite and packages): rebuilt only when they change.
# Prints the directory holding vmlinuz, initrd.img, rootfs.qcow2 and image.json on its last line. Needs root.
set -euo pipefail

SUITE="${SSVM_IMAGE_SUITE:-bookworm}"
MIRROR="${SSVM_IMAGE_MIRROR:-http://deb.debian.org/debian}"
CACHE_ROOT="${SSVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ssvm-operator}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT="$(cd "$HERE/../.." && pwd)"
PACKAGES=(python3 openssh-server iptables nfs-common iproute2 systemd-sysv udev kmod e2fsprogs dbus
          linux-image-cloud-amd64 initramfs-tools)
RECIPE=$( { cat "${BASH_SOURCE[0]}" "$HERE/ssvm-boot" "$HERE/ssvm-boot.service" "$HERE/ssvm-agent.service" "$HERE/sshd-ssvm.conf" \
            "$PROJECT"/operator/ssvm_operator/agent/*.py; echo "$SUITE ${PACKAGES[*]}"; } | sha256sum | cut -c1-12)
OUT="$CACHE_ROOT/ssvm-image/$SUITE-$RECIPE"

say() { echo "ssvm-image: $*" >&2; }

if [[ -f "$OUT/image.json" ]]; then
  echo "$OUT"
  exit 0
fi
[[ $(id -u) == 0 ]] || { say "building the image needs root (debootstrap, chroot)"; exit 1; }
missing=()
for tool in debootstrap:debootstrap qemu-img:qemu-utils mkfs.ext4:e2fsprogs; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if (( ${#missing[@]} )); then
  say "installing ${missing[*]}"
  apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$CACHE_ROOT/ssvm-image"
work=$(mktemp -d "$CACHE_ROOT/ssvm-image/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
start=$(date +%s)
say "debootstrap $SUITE (minbase + ${#PACKAGES[@]} packages) from $MIRROR"
debootstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; say "debootstrap failed"; exit 1; }

say "installing the agent, the boot unit and sshd's settings"
install -m 0755 "$HERE/ssvm-boot" "$root/usr/local/sbin/ssvm-boot"
install -m 0644 "$HERE/ssvm-boot.service" "$root/etc/systemd/system/ssvm-boot.service"
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/ssvm-boot.service "$root/etc/systemd/system/multi-user.target.wants/ssvm-boot.service"
install -m 0644 "$HERE/ssvm-agent.service" "$root/etc/systemd/system/ssvm-agent.service"   # the copy server
ln -sf /etc/systemd/system/ssvm-agent.service "$root/etc/systemd/system/multi-user.target.wants/ssvm-agent.service"
install -m 0644 "$HERE/sshd-ssvm.conf" "$root/etc/ssh/sshd_config.d/ssvm.conf"
rm -f "$root"/etc/ssh/ssh_host_*            # every SSVM gets its own: from the config disk, else made at boot
# The agent unpacked and compiled by the guest's Python: a zipapp's modules are compiled again at every
# call (over a second per action under software emulation), a directory's come from __pycache__.
(cd "$PROJECT" && .venv/bin/python -m ssvm_operator.agent.pack "$work/ssvm-agent.pyz") >/dev/null
mkdir -p "$root/usr/local/lib/ssvm-agent"
"$PROJECT/.venv/bin/python" -m zipfile -e "$work/ssvm-agent.pyz" "$root/usr/local/lib/ssvm-agent/"
chroot "$root" python3 -m compileall -q /usr/local/lib/ssvm-agent >/dev/null
printf '#!/bin/sh\nexec /usr/bin/python3 -I /usr/local/lib/ssvm-agent "$@"\n' > "$root/usr/local/bin/ssvm-agent"
chmod 0755 "$root/usr/local/bin/ssvm-agent"
# Boot-time jobs an SSVM does not need (a scrub of LVM snapshots it has none of, timers for a long-lived host).
for unit in e2scrub_reap.service e2scrub_all.timer apt-daily.timer apt-daily-upgrade.timer man-db.timer fstrim.timer; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
ln -sf /dev/null "$root/etc/systemd/network/99-default.link"   # eth0, eth1...: the names the boot arguments use
chroot "$root" update-initramfs -u -k all >"$work/initramfs.log" 2>&1 \
  || { tail -20 "$work/initramfs.log" >&2; say "update-initramfs failed"; exit 1; }   # the initramfs's udev names NICs first
echo "/dev/vda / ext4 defaults 0 1" > "$root/etc/fstab"
echo "ssvm" > "$root/etc/hostname"
: > "$root/etc/machine-id"                    # made at first boot, one per SSVM
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

say "packing the kernel, the initramfs and the root file system"
mkdir -p "$work/out"
cp "$(ls "$root"/boot/vmlinuz-* | sort | tail -1)" "$work/out/vmlinuz"
cp "$(ls "$root"/boot/initrd.img-* | sort | tail -1)" "$work/out/initrd.img"
kernel=$(basename "$(ls "$root"/boot/vmlinuz-* | sort | tail -1)" | sed 's/^vmlinuz-//')
mkfs.ext4 -q -F -L ssvm-root -d "$root" "$work/rootfs.raw" 1536M >/dev/null
qemu-img convert -c -O qcow2 "$work/rootfs.raw" "$work/out/rootfs.qcow2"
seconds=$(( $(date +%s) - start ))
size=$(stat -c %s "$work/out/rootfs.qcow2")
cat > "$work/out/image.json" <<JSON
{"suite": "$SUITE", "kernel": "$kernel", "recipe": "$RECIPE", "rootfsBytes": $size, "buildSeconds": $seconds,
 "sshPort": 3922, "agent": "/usr/local/bin/ssvm-agent", "configDiskSerial": "ssvmcfg"}
JSON
rm -rf "$OUT"
mv "$work/out" "$OUT"
say "built in ${seconds}s: rootfs.qcow2 $((size / 1048576)) MiB, kernel $kernel"
echo "$OUT"

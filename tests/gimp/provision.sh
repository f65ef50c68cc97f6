#!/usr/bin/env bash
# Build (or reuse) an isolated Debian 13 "trixie" root with GIMP 3 for the GIMP tests.
#
#   sudo tests/gimp/provision.sh [ROOT]        (default: $KNOCKOUT_GIMP_ROOT or /var/cache/knockout/gimp-root)
#
# Debian 12 has no GIMP 3, so GIMP 3.0 from trixie runs in a debootstrap root; the host's apt
# sources and packages are not touched (only the debootstrap package is installed on the host).
# About 2 minutes and 1 GB on a fresh machine; an existing, complete root is reused in about 0 s.
# The root is built in ROOT.partial and renamed when complete, so a killed run never leaves a
# half-built root that looks usable.  Needs root privileges (debootstrap, chroot) and network.
set -euo pipefail

ROOT="${1:-${KNOCKOUT_GIMP_ROOT:-/var/cache/knockout/gimp-root}}"
STAMP_NAME=.knockout-gimp-root
# bump when the package list changes: an older root gets the missing packages added (not rebuilt)
STAMP_VERSION=2
PACKAGES=(gimp python3-gi gir1.2-gimp-3.0 python3-numpy python3-scipy python3-sklearn python3-pil
          python3-yaml python3-tqdm python3-venv python3-setuptools python3-pip ca-certificates
          # the dialog under a virtual X server: interactive-mode test and the README screenshot
          xvfb xauth xdotool imagemagick)

log() { printf 'provision: %s\n' "$*" >&2; }

if [[ -f "$ROOT/$STAMP_NAME" ]] && [[ "$(cat "$ROOT/$STAMP_NAME")" == "$STAMP_VERSION" ]]; then
    log "reusing the GIMP 3 root at $ROOT"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (debootstrap and chroot need it): sudo $0 $ROOT"
    exit 2
fi

mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9
# another run may have finished it while we waited for the lock
if [[ -f "$ROOT/$STAMP_NAME" ]] && [[ "$(cat "$ROOT/$STAMP_NAME")" == "$STAMP_VERSION" ]]; then
    log "reusing the GIMP 3 root at $ROOT"
    exit 0
fi

start=$SECONDS
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap on the host"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# the Debian mirror the machine's own apt sources already use
MIRROR=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/\?$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
MIRROR=${MIRROR:-http://deb.debian.org/debian}

in_root() { unshare --mount --propagation private -- chroot "$PARTIAL" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }
install_packages() {
    in_root apt-get update -qq >>"$PARTIAL.log" 2>&1
    in_root apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >>"$PARTIAL.log" 2>&1 || {
        tail -n 20 "$PARTIAL.log" >&2
        exit 1
    }
    in_root apt-get clean
    rm -rf "$PARTIAL"/var/lib/apt/lists/*
}

PARTIAL="$ROOT.partial"
if [[ -f "$ROOT/$STAMP_NAME" ]]; then
    # an older complete root: add what is missing, in place of a rebuild
    log "adding packages to the GIMP 3 root at $ROOT (version $(cat "$ROOT/$STAMP_NAME") -> $STAMP_VERSION)"
    rm -f "$ROOT/$STAMP_NAME"
    mv "$ROOT" "$PARTIAL"
    install_packages
    echo "$STAMP_VERSION" >"$PARTIAL/$STAMP_NAME"
    mv "$PARTIAL" "$ROOT"
    rm -f "$PARTIAL.log"
    log "GIMP 3 root updated in $((SECONDS - start)) s"
    exit 0
fi
rm -rf "$PARTIAL" "$ROOT"
log "debootstrap trixie from $MIRROR into $PARTIAL"
debootstrap --variant=minbase trixie "$PARTIAL" "$MIRROR" >"$PARTIAL.log" 2>&1 || {
    tail -n 20 "$PARTIAL.log" >&2
    exit 1
}
cp /etc/resolv.conf "$PARTIAL/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$PARTIAL/usr/sbin/policy-rc.d"
chmod 0755 "$PARTIAL/usr/sbin/policy-rc.d"

log "installing GIMP 3 and Python packages in the root"
install_packages
# TLS to PyPI may go through an intercepting proxy whose CA only the host trusts
cp /etc/ssl/certs/ca-certificates.crt "$PARTIAL/opt/host-ca-bundle.crt"
mkdir -p "$PARTIAL/mnt/work" "$PARTIAL/mnt/src"
in_root gimp-console-3.0 --version >&2
echo "$STAMP_VERSION" >"$PARTIAL/$STAMP_NAME"
mv "$PARTIAL" "$ROOT"
rm -f "$PARTIAL.log"
log "GIMP 3 root ready at $ROOT in $((SECONDS - start)) s ($(du -sh "$ROOT" | cut -f1))"

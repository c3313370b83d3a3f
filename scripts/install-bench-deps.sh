#!/usr/bin/env bash
# Installs the peer of `steward bench cluster`: etcd 3.4 from Debian's `etcd-server` package
# (bookworm ships 3.4.23). Idempotent: it installs only when `etcd` is missing.
#
# The benchmark starts its own etcd processes on their own loopback ports and data directories;
# it never uses the packaged service. Debian's package enables and starts that service
# (`etcd.service`, or `/etc/init.d/etcd` without systemd) on 2379/2380 with /var/lib/etcd, so this
# script stops and disables it whenever it finds it enabled or running: an idle etcd would
# otherwise share the machine's CPU and disk with every measurement.
set -euo pipefail

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi

if ! command -v etcd >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    etcd-server
fi

# Stop and disable the packaged service, whichever init system the machine runs.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  if systemctl is-enabled --quiet etcd.service 2>/dev/null \
    || systemctl is-active --quiet etcd.service 2>/dev/null; then
    $SUDO systemctl disable --now etcd.service
  fi
elif [ -x /etc/init.d/etcd ]; then
  if $SUDO /etc/init.d/etcd status >/dev/null 2>&1; then
    $SUDO /etc/init.d/etcd stop
  fi
  if ls /etc/rc[2345].d/S*etcd >/dev/null 2>&1; then
    $SUDO update-rc.d etcd disable >/dev/null
  fi
fi

# sed reads all of its input: `head` would exit early and, under pipefail, etcd's SIGPIPE
# would fail this script now and then.
etcd --version | sed -n 1p

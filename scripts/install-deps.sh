#!/usr/bin/env bash
# Installs what a fresh machine needs beyond the Rust toolchain, then checks the toolchain.
# Idempotent: it installs only what is missing. Called by the README's set-up commands and
# by .ci/run, so a new machine and CI install exactly the same things.
set -euo pipefail

need_apt=()
# No system packages are needed for the build and the default test run today. Packages for the
# etcd comparison are installed by scripts/install-bench-deps.sh, which the default run never calls.

if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done

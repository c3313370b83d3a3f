#!/usr/bin/env bash
# Installs what a fresh machine needs beyond the Rust toolchain, then checks the toolchain.
# Idempotent: it installs only what is missing. Called by the README's set-up commands and
# by .ci/run, so a new machine and CI install exactly the same things.
set -euo pipefail

# The build needs no system packages. The default test run smoke-tests `steward bench cluster
# --quick`, which needs etcd: installed (only if missing) by the benchmark's own script.
"$(dirname "$0")/install-bench-deps.sh"

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done

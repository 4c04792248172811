#!/usr/bin/env bash
# Runs one v2 lab boot by hand: builds the project, builds or reuses the guest images
# (scripts/v2-lab-images.sh), boots Debian's kernel with systemd as PID 1 and cgroup v2 alone under
# QEMU TCG and runs the scenario in it. Arguments go to dist/lab/v2/runV2Lab.js, e.g.
#   scripts/v2-lab.sh --phases smoke
#   scripts/v2-lab.sh --phases service,cage --duration 30
# Needs root (installing the lab tools and the image cache). docs/v2-lab.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-test-tools.sh
npm run -s build
exec node dist/lab/v2/runV2Lab.js "$@"

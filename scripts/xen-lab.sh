#!/usr/bin/env bash
# Runs one Xen lab scenario by hand: builds the project, builds or reuses the lab images
# (scripts/xen-lab-images.sh), boots Xen 4.17 under QEMU TCG and runs the scenario in dom0.
# Arguments go to dist/lab/xen/runXenLab.js, e.g.
#   scripts/xen-lab.sh --phases cpu-off,cpu-on --scheduler credit2 --duration 20
# Needs root (dom0's tools do not, but installing the lab tools and the cache do). docs/xen-lab.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-test-tools.sh
npm run -s build
exec node dist/lab/xen/runXenLab.js "$@"

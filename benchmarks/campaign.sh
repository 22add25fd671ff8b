#!/usr/bin/env bash
# The committed benchmark campaign. Every run is cached (benchmarks/cache/), so rerunning this script
# resumes where it stopped and only trains what is missing.
#   bash benchmarks/campaign.sh [SEEDS] [MODELS]      e.g. bash benchmarks/campaign.sh 3 all
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-1}
MODELS=${2:-all}
PY=${PY:-.venv/bin/python}
for ds in ml-100k lastfm-s3rec amazon-beauty-s3rec simulator amazon-video-sasrec amazon-toys-s3rec; do
  "$PY" -m benchmarks.run --dataset "$ds" --models "$MODELS" --seeds "$SEEDS" --threads "${THREADS:-0}"
done

#!/usr/bin/env bash
# A/B benchmark of two revisions in one session: `scripts/bench-ab.sh REV_A REV_B [ROUNDS]`
# checks out both into temporary worktrees, starts one pair of services (ports 29092/26379,
# state under the output folder) and runs `python -m bench --quick --only stream daily`
# alternately A B A B ... with this checkout's virtualenv, each side's own code first on the
# path. Results: $BENCH_AB_OUT (default /tmp/kassa-ab)/<side><round>/results/*.json, compared
# by bench/ab.py. Compare medians and ratios of the same run only.
set -euo pipefail
cd "$(dirname "$0")/.."
rev_a=${1:?usage: scripts/bench-ab.sh REV_A REV_B [ROUNDS]}
rev_b=${2:?usage: scripts/bench-ab.sh REV_A REV_B [ROUNDS]}
rounds=${3:-2}
out=${BENCH_AB_OUT:-/tmp/kassa-ab}
python=$PWD/.venv/bin/python
rm -rf "$out" && mkdir -p "$out"
git worktree add --detach "$out/A" "$rev_a" >/dev/null
git worktree add --detach "$out/B" "$rev_b" >/dev/null
export KASSA_STATE_DIR=$out/state KASSA_DATA_DIR=$out/data
export KASSA_KAFKA_BOOTSTRAP=127.0.0.1:29092 KASSA_KAFKA_CONTROLLER_PORT=29093
export KASSA_REDIS_URL=redis://127.0.0.1:26379/0
finish() {
  PYTHONPATH=$PWD "$python" -m cli.main services down || true
  git worktree remove --force "$out/A" || true
  git worktree remove --force "$out/B" || true
}
trap finish EXIT
PYTHONPATH=$PWD "$python" -m cli.main services up
for round in $(seq 1 "$rounds"); do
  for side in A B; do
    mkdir -p "$out/$side$round"
    (cd "$out/$side" && PYTHONPATH=$out/$side "$python" -m bench --quick --only stream daily \
      --output "$out/$side$round/BENCHMARKS.md" --results "$out/$side$round/results" \
      --command "scripts/bench-ab.sh $rev_a $rev_b: $side$round") >"$out/$side$round/log" 2>&1
    echo "$side$round done"
  done
done
"$python" bench/ab.py "$out" "$rounds"

#!/usr/bin/env bash
# Same-run A/B of `wgpu-cnn bench` for two binaries (e.g. the previous commit and this one),
# alternating which runs first, ROUNDS rounds; prints each round's medians and the mean of
# the medians with its spread. On a noisy machine (lavapipe shares the CPU with everything)
# one pair of runs is not enough: use 6 rounds or more.
#
#   bash tools/bench_ab.sh BASELINE_BIN NEW_BIN [ROUNDS] [-- bench args]
set -euo pipefail
a="$1"; b="$2"; rounds="${3:-6}"
shift 3 || shift $#
[ "${1:-}" = "--" ] && shift
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
run() { "$1" bench --steps ${STEPS:-30} "$@" 2>&1 | tail -n 1; }
out=$(mktemp)
for i in $(seq 1 "$rounds"); do
  if [ $((i % 2)) = 1 ]; then order="$a $b"; else order="$b $a"; fi
  for bin in $order; do
    ms=$("$bin" bench --steps ${STEPS:-30} "$@" 2>&1 | tail -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["step_ms_median"])')
    tag=$([ "$bin" = "$a" ] && echo A || echo B)
    echo "round $i $tag $ms" | tee -a "$out"
  done
done
python3 - "$out" "$a" "$b" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for tag, name in (("A", sys.argv[2]), ("B", sys.argv[3])):
    v = [float(r[3]) for r in rows if r[2] == tag]
    print(f"{tag} {name}: mean of {len(v)} medians {statistics.mean(v):.1f} ms "
          f"(stdev {statistics.stdev(v) if len(v) > 1 else 0:.1f}, min {min(v):.1f}, max {max(v):.1f})")
a = statistics.mean(float(r[3]) for r in rows if r[2] == "A")
b = statistics.mean(float(r[3]) for r in rows if r[2] == "B")
print(f"B / A = {b / a:.3f}")
PY

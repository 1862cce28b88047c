#!/bin/bash
# Interleaved A/B of the single async enqueue: a base revision against this tree.
#
#   benchmarks/enqueue_async_ab.sh BASE_REV [ROUNDS] [ARGS...]
#
# Exports BASE_REV (git archive, no worktree) to a temporary folder, then runs
# `python -m benchmarks.enqueue_async ARGS` ROUNDS times on each side, alternating
# (base, this tree, base, ...), each report under $OUT/<side>-<round>/ (default
# OUT: a temporary folder, printed). Every run also times PgQueuer, so each pair
# carries its own peer figures. ARGS default: --jobs 1500 --runs 3.
set -euo pipefail
base_rev=${1:?usage: $0 BASE_REV [ROUNDS] [ARGS...]}
rounds=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--jobs 1500 --runs 3)
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$here/.venv/bin/python}
out=${OUT:-$(mktemp -d -t enqueue-async-ab-XXXX)}
base=$(mktemp -d -t enqueue-async-base-XXXX)
trap 'rm -rf "$base"' EXIT
git -C "$here" archive "$base_rev" | tar -x -C "$base"
echo "reports under $out"
for i in $(seq "$rounds"); do
  for side in base new; do
    dir=$here
    [ "$side" = base ] && dir=$base
    (cd "$dir" && PYTHONPATH=$dir "$py" -m benchmarks.enqueue_async "${args[@]}" \
      --out "$out/$side-$i" --tag ab) > "$out/$side-$i.log" 2>&1
    echo "$side $i done $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
"$py" - "$out" <<'EOF'
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
for report in sorted(out.glob("*/*.json")):
    side = report.parent.name.split("-")[0]
    for client, v in json.loads(report.read_text())["results"].items():
        if "rate" in v:
            figures.setdefault((side, client), []).append((v["cpu_ms_per_job"], v["rate"]))
print("| side | client | runs | CPU ms/job (median) | jobs/s (median) |")
print("|---|---|---|---|---|")
for (side, client), vals in sorted(figures.items()):
    cpu = statistics.median(c for c, _ in vals)
    rate = statistics.median(r for _, r in vals)
    print(f"| {side} | {client} | {len(vals)} | {cpu:.4f} | {rate:,.0f} |")
EOF

#!/bin/bash
# Instructions per request of one bench/transport.py contender, under callgrind: a
# figure the machine's load does not move (CPU time on a shared machine does).
#
#   bench/instructions.sh [--tree DIR] [--ok-body TEXT] CONTENDER     (e.g. transport-aiohttp)
#   bench/instructions.sh [--tree DIR] sender-path
#
# sender-path: this checkout's bench/sender_path.py (the per-delivery path to a transport
# that answers at once) with DIR's notifier, 2,000 and 12,000 deliveries:
# (Ir(12,000) - Ir(2,000)) / 10,000 instructions per delivery.
#
# Runs the contender's child (from DIR's bench/transport.py: another checkout to compare)
# with 500 and with 2,500 requests after its 500 warm-up, against bench/fast_receiver.py
# (not under valgrind), and prints (Ir(2,500) - Ir(500)) / 2,000: start-up cancels out.
# Each run takes a minute or two. Needs valgrind.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-$(command -v python)}
TREE=$(dirname "$HERE")
ANSWER=()
while [[ $# -gt 1 ]]; do
  case $1 in
    --tree) TREE=$2; shift 2 ;;
    --ok-body) ANSWER=(--ok-body "$2"); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
CHILD=$1
if [[ $CHILD == sender-path ]]; then
  OUT=$(mktemp -d)
  trap 'rm -rf "$OUT"' EXIT
  deliver() {
    (cd /tmp && PYTHONPATH=$TREE nice -n 10 valgrind --tool=callgrind \
      --callgrind-out-file="$OUT/cg.$1" "$PY" "$HERE/sender_path.py" --raw --repeat 1 \
      --deliveries "$1" >/dev/null 2>"$OUT/err.$1")
    grep -o "Collected : [0-9]*" "$OUT/err.$1" | awk '{print $3}'
  }
  LOW=$(deliver 2000)
  HIGH=$(deliver 12000)
  echo "sender-path with $TREE's notifier: $(( (HIGH - LOW) / 10000 )) instructions per delivery"
  exit 0
fi
SECRET=$(cd "$HERE" && "$PY" -c 'from _common import SECRET; print(SECRET)')
OUT=$(mktemp -d)
trap 'kill "$RX_PID" 2>/dev/null || true; rm -rf "$OUT"' EXIT
coproc RX { "$PY" "$HERE/fast_receiver.py" --secret "$SECRET" "${ANSWER[@]}"; }
read -r _ PORT <&"${RX[0]}"
count() {
  nice -n 10 valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$1" "$PY" \
    "$TREE/bench/transport.py" --child "$CHILD" --url "http://127.0.0.1:$PORT/sink" \
    --requests "$1" --in-flight 64 >/dev/null 2>"$OUT/err.$1"
  grep -o "Collected : [0-9]*" "$OUT/err.$1" | awk '{print $3}'
}
LOW=$(count 500)
HIGH=$(count 2500)
echo "$CHILD from $TREE: $(( (HIGH - LOW) / 2000 )) instructions per request"

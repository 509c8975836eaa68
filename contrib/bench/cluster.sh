#!/usr/bin/env bash
# One room spread over a cluster on this machine: NODES secure-server nodes sharing one Redis,
# and `clichat-bench fanout` holding MEMBERS connections spread over them (round-robin) and over
# its worker processes. The run behind "A room of 100,000" in docs/BENCHMARKS.md.
#
# Usage: contrib/bench/cluster.sh [MEMBERS [NODES]] [-- FANOUT_ARGS...]
#
#   MEMBERS      connections in the room, senders included (default 100000)
#   NODES        secure-server nodes (default 6)
#   FANOUT_ARGS  the scenario, instead of the default: --rate 2 -d 60 --burst 20
#                (one sender, 2 messages a second for 60 s, then 20 at once)
#
# Environment:
#   BIN          where secure-server and clichat-bench are (default target/release, or
#                $CARGO_TARGET_DIR/release when that is set)
#   SENDERS      sending connections, part of MEMBERS (default 1)
#   BASE_PORT    node k listens on 127.0.0.1:BASE_PORT+k (default 7400)
#   REDIS_PORT   Redis's port (default 6390)
#   NICE         a prefix for the bench and the nodes, e.g. "nice -n 19" for a trial run
#   KEEP=1       keep the work directory (configs, logs) instead of removing it
#
# Every process stays under the 20,000 open files one process may have here: each node holds
# MEMBERS/NODES connections, and the bench splits its receivers over worker processes of
# 10,000 each. The bench's connections come from 127.0.0.2 to 127.0.0.9 (its default for a
# loopback server), eight addresses with their own ephemeral ports each.
set -euo pipefail

MEMBERS=100000
NODES=6
if [[ $# -gt 0 && $1 != -- ]]; then MEMBERS=$1; shift; fi
if [[ $# -gt 0 && $1 != -- ]]; then NODES=$1; shift; fi
if [[ ${1:-} == -- ]]; then shift; fi
SCENARIO=("$@")
if [[ ${#SCENARIO[@]} -eq 0 ]]; then SCENARIO=(--rate 2 -d 60 --burst 20); fi

BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
SENDERS=${SENDERS:-1}
BASE_PORT=${BASE_PORT:-7400}
REDIS_PORT=${REDIS_PORT:-6390}
read -r -a NICE <<<"${NICE:-}"

for program in "$BIN/secure-server" "$BIN/clichat-bench"; do
    [[ -x $program ]] || { echo "no $program: cargo build --release -p secure-server -p clichat-bench" >&2; exit 1; }
done
for program in redis-server redis-cli curl; do
    command -v "$program" >/dev/null || { echo "needs $program (Debian: redis-server, curl)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/clichat-cluster.XXXXXX)
PIDS=()
SAMPLERS=()
REDIS_PID=
cleanup() {
    local pid
    for pid in "${SAMPLERS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [[ -n $REDIS_PID ]]; then kill -TERM "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
    if [[ ${KEEP:-} == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

redis_info() { redis-cli -p "$REDIS_PORT" info "$1" | tr -d '\r' | grep -E "^($2):" | tr '\n' ' '; echo; }

# The machine's busy share over 5 s, of all cores, from /proc/stat (what else is running).
machine_busy() {
    local a b
    a=($(head -1 /proc/stat)); sleep 5; b=($(head -1 /proc/stat))
    local busy=0 total=0 i
    for i in 1 2 3 4 5 6 7 8; do
        local d=$((b[i] - a[i])); total=$((total + d))
        [[ $i == 4 || $i == 5 ]] || busy=$((busy + d))
    done
    echo "$((busy * 100 * $(nproc) / total))% of $(($(nproc) * 100))"
}

echo "== $(date -u '+%F %T UTC'): $MEMBERS members on $NODES nodes, work directory $WORK"
echo "machine before: $(machine_busy) busy over 5 s; load $(cut -d' ' -f1-3 /proc/loadavg)"

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --logfile "$WORK/redis.log" &
REDIS_PID=$!
for _ in $(seq 100); do
    [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && break
    sleep 0.1
done
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

"$BIN/clichat-bench" config "$MEMBERS" --bots-only --announce-presence-up-to 100 \
    --cluster "$REDIS_URL" --nodes "$NODES" --out "$WORK/node.json"

SERVERS=()
for k in $(seq "$NODES"); do
    port=$((BASE_PORT + k))
    (ulimit -n 20000; exec "${NICE[@]}" "$BIN/secure-server" --config "$WORK/node-n$k.json" \
        --port "$port" --bind 127.0.0.1) >"$WORK/n$k.log" 2>&1 &
    PIDS+=($!)
    SERVERS+=("127.0.0.1:$port")
done
for k in $(seq "$NODES"); do
    url="http://127.0.0.1:$((BASE_PORT + k))/_status"
    for _ in $(seq 300); do
        curl -sf "$url" 2>/dev/null | grep -q '"link":"up"' && break
        sleep 0.1
    done
    curl -sf "$url" | grep -q '"link":"up"' || { echo "node n$k did not come up:" >&2; tail "$WORK/n$k.log" >&2; exit 1; }
done
echo "nodes: ${SERVERS[*]} (pids ${PIDS[*]}); redis pid $REDIS_PID"
echo "redis before: $(redis_info memory 'used_memory|used_memory_rss')"
echo "redis cpu before: $(redis_info cpu 'used_cpu_sys|used_cpu_user')"

# Beside the run, every 5 s: the machine (vmstat) and Redis (memory, clients, operations).
vmstat -n -t 5 >"$WORK/vmstat.log" &
SAMPLERS=($!)
while sleep 5; do
    echo "$(date -u +%T) $(redis_info memory 'used_memory|used_memory_rss')$(redis_info stats instantaneous_ops_per_sec)"
done >"$WORK/redis-samples.log" 2>/dev/null &
SAMPLERS+=($!)

SERVER_LIST=$(IFS=,; echo "${SERVERS[*]}")
PID_LIST=$(IFS=,; echo "${PIDS[*]}")
set +e
(
    set -x
    "${NICE[@]}" "$BIN/clichat-bench" fanout --server "$SERVER_LIST" \
        --config "$WORK/node-n1.json" --login bot -r $((MEMBERS - SENDERS)) -S "$SENDERS" \
        "${SCENARIO[@]}" --pid "$PID_LIST" --also-pid "redis=$REDIS_PID"
)
status=$?
set -e
kill "${SAMPLERS[@]}" 2>/dev/null || true
wait "${SAMPLERS[@]}" 2>/dev/null || true

echo "machine every 5 s during the run (vmstat):"
cat "$WORK/vmstat.log"
echo "redis every 5 s during the run:"
cat "$WORK/redis-samples.log"

echo "redis after: $(redis_info memory 'used_memory|used_memory_rss|used_memory_peak')"
echo "redis cpu after: $(redis_info cpu 'used_cpu_sys|used_cpu_user')"
echo "redis keys: $(redis-cli -p "$REDIS_PORT" dbsize | tr -d '\r'), stream clichat:room $(redis-cli -p "$REDIS_PORT" xlen clichat:room | tr -d '\r') entries"
for k in $(seq "$NODES"); do
    warnings=$(grep -c -E '(WARN|ERROR)' "$WORK/n$k.log" || true)
    [[ $warnings == 0 ]] || { echo "node n$k logged $warnings warnings or errors, the first:"; grep -m3 -E '(WARN|ERROR)' "$WORK/n$k.log"; }
done
exit "$status"

#!/bin/bash
# Three gen-paxos nodes on loopback standing for LEASES leases for SECS seconds, printing
# CPU (ps: average since start), RSS and event counts every 10 s. For profiling by hand.
# usage: scripts/scale-run.sh LEASES SECS LEASE_MS [WRAP...]
#   node 1 runs under WRAP, e.g. heaptrack -o /tmp/hp   (build first: cargo build --release)
set -u
N=${1:?leases}; SECS=${2:?seconds}; LMS=${3:-2000}; shift $(( $# < 3 ? $# : 3 )); WRAP=("$@")
BIN=${GEN_PAXOS:-target/release/gen-paxos}
D=${SCALE_DIR:-/tmp/gen-paxos-scale}; mkdir -p "$D"
[ -f $D/certs/ca.pem ] || $BIN certs --nodes 1,2,3 --out $D/certs >/dev/null
python3 - "$N" > $D/leases.toml <<'PY'
import sys
n=int(sys.argv[1]); print("leases = ["); [print(f'"lease-{i:06}",') for i in range(n)]; print("]")
PY
P=(27101 27102 27103)
pids=()
for id in 1 2 3; do
  peers=()
  for j in 1 2 3; do [ $j != $id ] && peers+=(--peer "$j=127.0.0.1:${P[$((j-1))]}"); done
  cmd=($BIN node --id $id --listen 127.0.0.1:${P[$((id-1))]} --certs $D/certs --lease-duration ${LMS}ms "${peers[@]}" --config $D/leases.toml)
  if [ $id = 1 ] && [ ${#WRAP[@]} -gt 0 ]; then cmd=("${WRAP[@]}" "${cmd[@]}"); fi
  "${cmd[@]}" > $D/node-$id.events 2> $D/node-$id.stderr &
  pids+=($!)
done
for s in $(seq 1 $SECS); do
  sleep 1
  if [ $((s % 10)) = 0 ]; then
    for id in 1 2 3; do
      pid=$(pgrep -f -- "--listen 127.0.0.1:${P[$((id-1))]} " | tail -1)
      echo "t=$s node $id cpu=$(ps -o pcpu= -p $pid) rss_kib=$(awk '/VmRSS/{print $2}' /proc/$pid/status 2>/dev/null) elected=$(grep -c '"elected"' $D/node-$id.events) renewed=$(grep -c '"renewed"' $D/node-$id.events)"
    done
  fi
done
for id in 3 2 1; do pkill -TERM -f -- "--listen 127.0.0.1:${P[$((id-1))]} "; done
sleep 3
for id in 1 2 3; do pkill -KILL -f -- "--listen 127.0.0.1:${P[$((id-1))]} " 2>/dev/null; done
wait

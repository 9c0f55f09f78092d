#!/usr/bin/env bash
# msgr against ZeroMQ on this machine: the one-way 64-byte stream of issue 18 item 1, run in turns.
#
#   bench/vs-zeromq.sh [ROUNDS] [SIZE] [COUNT]     (defaults: 5 rounds, 64 bytes, 3,000,000 messages per run)
#
# Each round runs `msgr bench --mode stream` (msgr v1, then msgr2 crc) and `bench/zeromq/zmq_stream` (libzmq's
# PUSH/PULL over TCP loopback, both ends in one process as in msgr bench) one after the other, so that all three meet
# the same machine weather; the medians over the rounds and msgr's ratio to ZeroMQ's median come last. Both tools
# count messages delivered to the receiving application, with connection set-up outside the timing. Needs a C
# compiler and libzmq's headers (Debian: `apt-get install libzmq3-dev`; the script installs them when run as root).
# Not part of CI: it is a measurement, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
size=${2:-64}
count=${3:-3000000}

if ! [ -e /usr/include/zmq.h ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y --no-install-recommends libzmq3-dev >/dev/null || {
            apt-get update >/dev/null && apt-get install -y --no-install-recommends libzmq3-dev >/dev/null; }
    else
        echo "vs-zeromq: needs libzmq's headers (apt-get install libzmq3-dev)" >&2
        exit 1
    fi
fi
mkdir -p target/zeromq
cc -O2 -Wall -Wextra -o target/zeromq/zmq_stream bench/zeromq/zmq_stream.c -lzmq -lpthread
cargo build --release -p msgr-cli -q
# The CPU too: the ratio depends on it (on 2026-12-07 the same code measured 1.07-1.24 of ZeroMQ's rate on an
# AMD EPYC and 0.89-0.91 on an Intel Xeon with AVX-512; the evening's code, with fewer atomics per received
# message, 0.97-1.16 on the Xeon; once the bench's messages carried their sequence number in the header's tid instead
# of a front shared from one reference-counted chunk, 1.02-1.25).
# A VM may name only the vendor ("Intel(R) Xeon(R) Processor"): the vector extensions that matter here are added.
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
ext=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | grep -ow -e avx2 -e avx512f -e vpclmulqdq | tr '\n' ' ' || true)
cpu="$cpu${ext:+, with ${ext% }}"
echo "libzmq $(pkg-config --modversion libzmq 2>/dev/null || echo '?'), $rounds rounds of $count messages of $size B, on ${cpu:-an unknown CPU} ($(nproc) CPUs)" >&2

msgr_rate() { # protocol -> msgs/s of one run
    target/release/msgr bench --mode stream --size "$size" --count "$count" --transport msgr --protocol "$1" \
        --con-mode crc --idle-connections 0 --json 2>/dev/null |
        python3 -c 'import json,sys; print(round(json.load(sys.stdin)["runs"][0]["msgs_per_s"]))'
}
zmq_rate() {
    target/zeromq/zmq_stream "$size" "$count" | sed -n 's/.* rate=\([0-9]*\).*/\1/p'
}

v1=() v2=() zmq=()
for r in $(seq 1 "$rounds"); do
    a=$(msgr_rate v1) b=$(msgr_rate v2) c=$(zmq_rate)
    v1+=("$a") v2+=("$b") zmq+=("$c")
    printf 'round %d: msgr v1 %9d  msgr2 crc %9d  ZeroMQ %9d msgs/s  (load %s)\n' "$r" "$a" "$b" "$c" \
        "$(cut -d' ' -f1 /proc/loadavg)"
done
python3 - "${v1[*]}" "${v2[*]}" "${zmq[*]}" <<'PY'
import statistics, sys
v1, v2, zmq = ([int(x) for x in arg.split()] for arg in sys.argv[1:4])
m1, m2, mz = (statistics.median(x) for x in (v1, v2, zmq))
print(f"median: msgr v1 {m1:,.0f}  msgr2 crc {m2:,.0f}  ZeroMQ {mz:,.0f} msgs/s")
print(f"msgr v1 / ZeroMQ {m1 / mz:.2f}, msgr2 crc / ZeroMQ {m2 / mz:.2f}")
PY

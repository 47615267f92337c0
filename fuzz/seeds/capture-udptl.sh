#!/bin/sh
# Captures the UDPTL datagrams two spandsp T.38 peers (tests/fax/peer.c) exchange over loopback,
# for the udptl_ifp seed corpus: T.38 v0 (redundancy 3, repeats), v3 with ECM (T.6), and v2
# with redundancy 0. `-v -v` logs the hex of every datagram; make-media-seeds.py picks one of
# each IFP kind and a session per side from those logs.
#
#   fuzz/seeds/capture-udptl.sh /tmp/udptl-logs      # about 75 s
#   fuzz/seeds/make-media-seeds.py --udptl-logs /tmp/udptl-logs
set -eu
OUT=${1:?usage: capture-udptl.sh OUTDIR}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$OUT"
"$ROOT/tests/fax/build.sh" "$OUT/bin" >/dev/null
P=$OUT/bin/spandsp-peer
DOC=$ROOT/tests/fax/fixtures/one-page.tif
BASE=${CAPTURE_PORT_BASE:-41710}
run() {
    name=$1; port=$2; shift 2
    $P --mode receive --file "$OUT/$name-out.tif" --local 127.0.0.1:$((port + 1)) \
        --remote 127.0.0.1:$port -v -v "$@" 2>"$OUT/$name-rx.log" >"$OUT/$name-rx.json" &
    rx=$!
    $P --mode send --file "$DOC" --calling --local 127.0.0.1:$port \
        --remote 127.0.0.1:$((port + 1)) -v -v "$@" 2>"$OUT/$name-tx.log" >"$OUT/$name-tx.json"
    wait $rx
}
run v0 "$BASE" --version 0
run v3ecm $((BASE + 10)) --version 3 --ecm
run v2r0 $((BASE + 20)) --version 2 --redundancy 0 --no-repeats

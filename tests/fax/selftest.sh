#!/bin/sh
# Self-test for the spandsp T.38 test peer: builds it, runs its built-in UDPTL
# codec checks, then runs pairs of peers against each other over loopback UDP
# and checks that the received document is identical to the sent one.
#
#   tests/fax/selftest.sh            run all cases (in parallel)
#   SELFTEST_SERIAL=1 ...            run the cases one after another
#   SELFTEST_KEEP=1 ...              keep the work directory even on success
#   SELFTEST_PORT_BASE=40000 ...     first UDP port to use (default: derived from $$)
#   SELFTEST_CASES="v0 v2-ecm" ...   run only the named cases
#
# Needs: cc, libspandsp-dev, libtiff-tools (tiffcmp, tiffinfo), python3.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/fixtures"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/spandsp-peer-selftest.XXXXXX")
PORT_BASE=${SELFTEST_PORT_BASE:-$((20000 + ($$ % 2000) * 10))}
TIMEOUT=${SELFTEST_TIMEOUT:-120}

echo "selftest: work dir $WORK"

"$HERE/build.sh" "$WORK/bin" >/dev/null
PEER="$WORK/bin/spandsp-peer"
echo "selftest: built $PEER"

if ! "$PEER" --self-check >/dev/null; then
    echo "FAIL: --self-check"
    exit 1
fi
echo "selftest: UDPTL codec self-check ok"

for f in two-pages.tif one-page.tif; do
    [ -f "$FIX/$f" ] || { echo "FAIL: missing fixture $FIX/$f (run fixtures/make.sh)"; exit 1; }
done

pages_of() {
    tiffinfo "$1" 2>/dev/null | grep -c '^TIFF Directory' || true
}

# json_get FILE KEY  -> value of KEY in the last JSON line of FILE
json_get() {
    python3 -c '
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip().startswith("{")]
v = json.loads(lines[-1])[sys.argv[2]] if lines else None
print(json.dumps(v) if isinstance(v, (bool, str)) or v is None else v)
' "$1" "$2" 2>/dev/null || echo null
}

# run_case NAME INDEX VERSION ECM(0/1) LOSS DOC SENDER_CALLS(1/0) [extra peer args...]
run_case() {
    name=$1; idx=$2; ver=$3; ecm=$4; loss=$5; doc=$6; sender_calls=$7
    shift 7
    d="$WORK/$name"
    mkdir -p "$d"
    ptx=$((PORT_BASE + idx * 2))
    prx=$((ptx + 1))
    ecm_arg=""
    [ "$ecm" = 1 ] && ecm_arg="--ecm"
    tx_call=""; rx_call="--calling"
    [ "$sender_calls" = 1 ] && { tx_call="--calling"; rx_call=""; }

    # shellcheck disable=SC2086
    "$PEER" --mode receive --file "$d/out.tif" --local 127.0.0.1:$prx --remote 127.0.0.1:$ptx \
        --version "$ver" $ecm_arg $rx_call --loss "$loss" --seed $((idx * 7 + 3)) --timeout "$TIMEOUT" \
        --verbose "$@" >"$d/rx.json" 2>"$d/rx.log" &
    rx_pid=$!
    # shellcheck disable=SC2086
    "$PEER" --mode send --file "$FIX/$doc" --local 127.0.0.1:$ptx --remote 127.0.0.1:$prx \
        --version "$ver" $ecm_arg $tx_call --loss "$loss" --seed $((idx * 7 + 5)) --timeout "$TIMEOUT" \
        --verbose "$@" >"$d/tx.json" 2>"$d/tx.log" &
    tx_pid=$!

    if [ "$name" = "v0-malformed" ]; then
        # Garbage at the receiver while the call runs: it must be logged,
        # counted and dropped without disturbing the fax.
        sleep 2
        python3 - "$prx" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
port = int(sys.argv[1])
for d in (b"\x00",                          # shorter than a sequence number
          b"\x00\x05\x7f\x01",              # primary length runs past the end
          b"\x00\x05\xc1\x00",              # fragmented length determinant
          b"\x00\x05\x01\xaa",              # no error-recovery field
          b"\x00\x05\x01\x06\x00\x09\x01",  # secondary count runs past the end
          b"\x00\x05\x00\x00\x00",          # empty primary IFP
          b"\x00\x05\x01\x06\x00\x00\xff"): # trailing octet
    s.sendto(d, ("127.0.0.1", port))
PY
    fi

    rx_rc=0; tx_rc=0
    wait "$rx_pid" || rx_rc=$?
    wait "$tx_pid" || tx_rc=$?

    expect_pages=$(pages_of "$FIX/$doc")
    why=""
    [ "$tx_rc" = 0 ] || why="$why sender-exit=$tx_rc"
    [ "$rx_rc" = 0 ] || why="$why receiver-exit=$rx_rc"
    [ "$(json_get "$d/tx.json" ok)" = true ] || why="$why sender-json-not-ok"
    [ "$(json_get "$d/rx.json" ok)" = true ] || why="$why receiver-json-not-ok"
    [ "$(json_get "$d/tx.json" pages)" = "$expect_pages" ] || why="$why sender-pages=$(json_get "$d/tx.json" pages)"
    [ "$(json_get "$d/rx.json" pages)" = "$expect_pages" ] || why="$why receiver-pages=$(json_get "$d/rx.json" pages)"
    if [ -f "$d/out.tif" ]; then
        got=$(pages_of "$d/out.tif")
        [ "$got" = "$expect_pages" ] || why="$why out.tif-has-$got-pages"
        # tiffcmp -t: ignore tag differences (compression, fill order, software,
        # dates...), compare every directory's decoded scanlines and the image
        # geometry; exit status is non-zero on any pixel or size difference.
        tiffcmp -t "$FIX/$doc" "$d/out.tif" >"$d/tiffcmp.txt" 2>&1 || why="$why image-differs"
    else
        why="$why no-out.tif"
    fi
    want_ecm=false; [ "$ecm" = 1 ] && want_ecm=true
    [ "$(json_get "$d/rx.json" ecm)" = "$want_ecm" ] || why="$why ecm=$(json_get "$d/rx.json" ecm)"
    if [ "$loss" != 0 ]; then
        # Loss must actually have happened, and been repaired from redundancy.
        [ "$(json_get "$d/tx.json" tx_dropped)" -gt 0 ] || why="$why sender-dropped-nothing"
        [ "$(json_get "$d/rx.json" recovered)" -gt 0 ] || why="$why receiver-recovered-nothing"
    fi
    if [ "$name" = "v0-malformed" ]; then
        [ "$(json_get "$d/rx.json" rx_malformed)" = 7 ] || why="$why rx_malformed=$(json_get "$d/rx.json" rx_malformed)"
    fi

    summary="rate=$(json_get "$d/rx.json" bit_rate) ecm=$(json_get "$d/rx.json" ecm)"
    summary="$summary tx_dgrams=$(json_get "$d/tx.json" tx_datagrams)/$(json_get "$d/rx.json" tx_datagrams)"
    summary="$summary dropped=$(json_get "$d/tx.json" tx_dropped)/$(json_get "$d/rx.json" tx_dropped)"
    summary="$summary recovered=$(json_get "$d/rx.json" recovered)/$(json_get "$d/tx.json" recovered)"
    summary="$summary unrecovered=$(json_get "$d/rx.json" unrecovered)/$(json_get "$d/tx.json" unrecovered)"
    if [ -z "$why" ]; then
        echo "PASS $name ($summary)" >"$d/result"
    else
        echo "FAIL $name:$why ($summary; logs in $d)" >"$d/result"
    fi
}

# name idx version ecm loss document sender-calls [extra args]
CASES="
v0              0  0 0 0  two-pages.tif 1
v0-ecm          1  0 1 0  two-pages.tif 1
v2              2  2 0 0  two-pages.tif 1
v2-ecm          3  2 1 0  two-pages.tif 1
v0-loss10       4  0 0 10 two-pages.tif 1
v0-ecm-loss10   5  0 1 10 two-pages.tif 1
v2-loss10       6  2 0 10 two-pages.tif 1
v2-ecm-loss10   7  2 1 10 two-pages.tif 1
v3-ecm-std      8  3 1 0  one-page.tif  1
v0-malformed    9  0 0 0  one-page.tif  1
v2-bare         10 2 0 0  one-page.tif  1 --redundancy 0 --no-repeats
v2-answer-sends 11 2 1 0  one-page.tif  0
"

selected() {
    [ -z "${SELFTEST_CASES:-}" ] && return 0
    for c in $SELFTEST_CASES; do [ "$c" = "$1" ] && return 0; done
    return 1
}

pids=""
names=""
echo "$CASES" | {
    while read -r name idx ver ecm loss doc calls extra; do
        [ -n "$name" ] || continue
        selected "$name" || continue
        names="$names $name"
        # shellcheck disable=SC2086
        if [ -n "${SELFTEST_SERIAL:-}" ]; then
            echo "selftest: running $name"
            run_case "$name" "$idx" "$ver" "$ecm" "$loss" "$doc" "$calls" $extra
        else
            run_case "$name" "$idx" "$ver" "$ecm" "$loss" "$doc" "$calls" $extra &
            pids="$pids $!"
        fi
    done
    [ -z "$pids" ] || { echo "selftest: running$names in parallel (takes ~1 minute)"; wait $pids || true; }
    echo "$names" >"$WORK/names"
}

fail=0
for name in $(cat "$WORK/names"); do
    if [ -f "$WORK/$name/result" ]; then
        cat "$WORK/$name/result"
        grep -q '^PASS' "$WORK/$name/result" || fail=1
    else
        echo "FAIL $name: no result"
        fail=1
    fi
done

if [ "$fail" = 0 ]; then
    echo "selftest: ALL PASSED"
    [ -n "${SELFTEST_KEEP:-}" ] || rm -rf "$WORK"
    exit 0
fi
echo "selftest: FAILED (work dir kept: $WORK)"
exit 1

#!/bin/sh
# Build the spandsp T.38 test peer.
#   tests/fax/build.sh [OUTDIR]   ->  OUTDIR/spandsp-peer   (default OUTDIR: tests/fax/build)
# Needs: a C compiler and libspandsp-dev (Debian: apt-get install libspandsp-dev).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-"$HERE/build"}
CC=${CC:-cc}

mkdir -p "$OUT"

if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists spandsp; then
    # spandsp.h includes tiffio.h, and the peer is linked as a plain program,
    # so add libtiff/libm explicitly (pkg-config for 0.0.6 only says -lspandsp).
    SPANDSP_CFLAGS=$(pkg-config --cflags spandsp)
    SPANDSP_LIBS="$(pkg-config --libs spandsp) -ltiff -lm"
else
    SPANDSP_CFLAGS=
    SPANDSP_LIBS="-lspandsp -ltiff -lm"
fi

# shellcheck disable=SC2086  # word splitting of the flag lists is intended
"$CC" -std=gnu11 -Wall -Wextra -O2 $SPANDSP_CFLAGS \
    -o "$OUT/spandsp-peer" "$HERE/peer.c" $SPANDSP_LIBS

echo "$OUT/spandsp-peer"

# Shared by scripts/fuzz-smoke and scripts/fuzz-long (sourced, not run).
#
# Targets are the `[[bin]]` names of fuzz/Cargo.toml, so a target added there is picked up
# without touching the scripts. A target's seed corpus is fuzz/corpus/<target>/ (optional) and
# its dictionary is fuzz/dict/<target>.dict (a file or a symlink) or, failing that, the
# protocol dictionary named in fuzz_dict_for below.

# The fuzz crate's directory, the libFuzzer binaries' directory and the toolchain to build with.
FUZZ_DIR=${FUZZ_DIR:-$PWD/fuzz}
FUZZ_TRIPLE=${FUZZ_TRIPLE:-$(rustc -vV 2>/dev/null | sed -n 's/^host: //p' || true)}
FUZZ_BIN_DIR=$FUZZ_DIR/target/$FUZZ_TRIPLE/release

# Target names, in fuzz/Cargo.toml order: the `name` of each [[bin]] table.
fuzz_targets() {
  awk '
    /^\[\[bin\]\]/ { in_bin = 1; next }
    /^\[/          { in_bin = 0 }
    in_bin && /^[[:space:]]*name[[:space:]]*=/ {
      line = $0
      sub(/^[^=]*=[[:space:]]*"/, "", line)
      sub(/".*$/, "", line)
      print line
    }
  ' "$FUZZ_DIR/Cargo.toml"
}

# The dictionary of a target, or nothing. fuzz/dict/<target>.dict wins; otherwise the
# protocol's dictionary, when it exists.
fuzz_dict_for() {
  local t=$1 proto
  if [[ -e $FUZZ_DIR/dict/$t.dict ]]; then
    echo "$FUZZ_DIR/dict/$t.dict"
    return
  fi
  case "$t" in
    sip_parse | stream_framer | sip_* | transaction* | call_core*) proto=sip ;;
    sdp_parse | sdp_*) proto=sdp ;;
    digest_parse | digest_*) proto=digest ;;
    udptl_ifp | t38_* | t30_*) proto=t38 ;;
    fax_tiff) proto=tiff ;;
    media_streams | ingest_stream) proto=json-media ;;
    rtp_stats | rtp_*) proto=rtp ;;
    mqtt* | broker*) proto=mqtt ;;
    config*) proto=toml ;;
    admin* | *json*) proto=json ;;
    twiml* | webhook*) proto=twiml ;;
    *) proto=$t ;;
  esac
  if [[ -e $FUZZ_DIR/dict/$proto.dict ]]; then
    echo "$FUZZ_DIR/dict/$proto.dict"
  fi
}

# The cargo command that builds the targets: nightly when rustup has it, else the stable
# toolchain with RUSTC_BOOTSTRAP=1 (the sanitizer flags cargo-fuzz passes are -Z flags; the
# stable toolchain ships the same sanitizer runtimes). FUZZ_TOOLCHAIN overrides the choice.
fuzz_cargo() {
  local tc=${FUZZ_TOOLCHAIN:-}
  if [[ -z $tc ]]; then
    if rustup run nightly rustc --version >/dev/null 2>&1; then tc=nightly; else tc=bootstrap; fi
  fi
  if [[ $tc == bootstrap ]]; then
    echo "fuzz: no nightly toolchain; building with stable and RUSTC_BOOTSTRAP=1" >&2
    RUSTC_BOOTSTRAP=1 cargo fuzz "$@"
  else
    cargo "+$tc" fuzz "$@"
  fi
}

# Fails loudly when cargo-fuzz is missing (scripts/install-peers installs it).
fuzz_require_tools() {
  if ! command -v cargo >/dev/null 2>&1 || [[ -z $FUZZ_TRIPLE ]]; then
    echo "fuzz: cargo/rustc not found on PATH" >&2
    return 1
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is not installed; run scripts/install-peers (needs crates.io)," >&2
    echo "fuzz: or set FUZZ_SMOKE=0 to skip the fuzz smoke explicitly" >&2
    return 1
  fi
}

# Copies a target's seed corpus into DIR (created).
fuzz_seed_into() {
  local t=$1 dir=$2
  mkdir -p "$dir"
  if [[ -d $FUZZ_DIR/corpus/$t ]]; then
    find "$FUZZ_DIR/corpus/$t" -maxdepth 1 -type f -exec cp -t "$dir" {} +
  fi
}

# From a libFuzzer log: "runs cov ft corpus execs/s" of its last status line and final stats.
fuzz_stats() {
  local log=$1
  awk '
    /^#[0-9]+/ && / cov: / {
      runs = substr($1, 2)
      for (i = 2; i <= NF; i++) {
        if ($i == "cov:") cov = $(i + 1)
        if ($i == "ft:") ft = $(i + 1)
        if ($i == "corp:") corp = $(i + 1)
      }
    }
    /^stat::number_of_executed_units:/ { runs = $2 }
    /^stat::average_exec_per_sec:/ { eps = $2 }
    END {
      if (runs == "") runs = "?"; if (cov == "") cov = "?"; if (ft == "") ft = "?"
      if (corp == "") corp = "?"; if (eps == "") eps = "?"
      print runs, cov, ft, corp, eps
    }
  ' "$log"
}

# The reproducer libFuzzer wrote, from its log ("Test unit written to PATH"), or nothing.
fuzz_artifact() {
  sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$1" | tail -n 1
}

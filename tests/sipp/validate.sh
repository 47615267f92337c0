#!/usr/bin/env bash
# Validate the scenario pairs in this directory against each other with SIPp alone on
# loopback: UAS on 127.0.0.1:5080 (-m 1), UAC from 127.0.0.1:5090 to it (-m 1).
# Usage: tests/sipp/validate.sh [pair-name ...]   (no argument = all pairs)
# Exit code 0 when every pair passes.  Logs go to $OUT (default /tmp/sipp-validate).
set -uo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-/tmp/sipp-validate}
mkdir -p "$OUT"
UAS_PORT=${UAS_PORT:-5080}
UAC_PORT=${UAC_PORT:-5090}

# name | uas scenario + extra args | uac scenario + extra args (@UAS_PORT@ = $UAS_PORT)
PAIRS=(
  "cancel|uas_ring.xml|uac_cancel.xml"
  "busy|uas_busy.xml|uac_busy.xml"
  "503|uas_reject_503.xml|uac_expect_503.xml"
  "404|uas_reject_404.xml|uac_expect_404.xml"
  "408|uas_reject_408.xml|uac_expect_408.xml"
  "bye|uas_bye.xml|uac_wait_bye.xml"
  "reinvite|uas_reinvite.xml|uac_reinvite.xml"
  "481|uas_481.xml|uac_481.xml"
  "options|uas_options.xml|uac_options.xml"
  "register_auth|uas_register_auth.xml|uac_register_auth.xml"
  "register_badauth|uas_register_auth.xml|uac_register_badauth.xml"
  "invite_auth|uas_invite_auth.xml|uac_invite_auth.xml -auth_uri 5551234@127.0.0.1:@UAS_PORT@"
  "invite_auth401|uas_invite_auth401.xml|uac_invite_auth401.xml -auth_uri 5551234@127.0.0.1:@UAS_PORT@"
  "invite_badauth401|uas_invite_auth401.xml|uac_invite_badauth401.xml -auth_uri 5551234@127.0.0.1:@UAS_PORT@"
  "long_local_bye|-sn uas|uac_long.xml"
  "long_remote_bye|uas_bye.xml|uac_long.xml"
)
# pairs whose UAS is expected to FAIL (exit 1) while the UAC passes
EXPECT_UAS_FAIL=" register_badauth invite_badauth401 "

want=" $* "
fail=0
for p in "${PAIRS[@]}"; do
  IFS='|' read -r name uas uac <<<"$p"
  if [[ $uas == -sn* ]]; then uas_args=$uas; else uas_args="-sf $uas"; fi
  uac_args="-sf ${uac//@UAS_PORT@/$UAS_PORT}"
  [[ $# -gt 0 && $want != *" $name "* ]] && continue
  # uas_invite_auth.xml logs the Proxy-Authorization for check_digest.py (SIPp cannot verify it)
  [[ $uas == uas_invite_auth.xml ]] && uas_args+=" -trace_logs -log_file $OUT/$name.authlog"
  rm -f "$OUT/$name".*
  # shellcheck disable=SC2086
  sipp $uas_args -i 127.0.0.1 -p "$UAS_PORT" -m 1 -nostdin -timeout 40s -timeout_error \
       -trace_err -error_file "$OUT/$name.uas.err" >"$OUT/$name.uas.log" 2>&1 &
  uas_pid=$!
  sleep 0.3
  # shellcheck disable=SC2086
  sipp $uac_args 127.0.0.1:"$UAS_PORT" -s 5551234 -i 127.0.0.1 -p "$UAC_PORT" -m 1 -nostdin \
       -timeout 40s -timeout_error -trace_err -error_file "$OUT/$name.uac.err" \
       >"$OUT/$name.uac.log" 2>&1
  uac_rc=$?
  wait "$uas_pid"; uas_rc=$?
  if [[ $uas == uas_invite_auth.xml && $uac_rc -eq 0 ]]; then
    ./check_digest.py "$OUT/$name.authlog" trunkuser trunkpass >"$OUT/$name.digest" 2>&1 || uac_rc=2
  fi
  exp_uas=0; [[ $EXPECT_UAS_FAIL == *" $name "* ]] && exp_uas=1
  if [[ $uac_rc -eq 0 && $uas_rc -eq $exp_uas ]]; then r=PASS; else r=FAIL; fail=1; fi
  printf '%-18s uac=%s uas=%s (expected uac=0 uas=%s)  %s\n' "$name" "$uac_rc" "$uas_rc" "$exp_uas" "$r"
done
exit $fail

#!/usr/bin/env python3
"""Check the digest responses that uas_invite_auth.xml logged (SIPp -trace_logs -log_file FILE).

usage: check_digest.py LOGFILE [USERNAME [PASSWORD]]   (defaults trunkuser / trunkpass)
Each line 'PROXY-AUTHORIZATION method=M Digest k=v,...' is checked (RFC 2617/7616 MD5,
qop=auth or none).  Exit 0 when at least one line was found and all are valid, 1 otherwise.
SIPp's own <verifyauth> cannot read Proxy-Authorization, hence this helper."""
import hashlib
import re
import sys


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def params(digest):
    return {k.lower(): v.strip('"') for k, v in
            re.findall(r'([A-Za-z-]+)=("[^"]*"|[^,\s]+)', digest)}


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    user = sys.argv[2] if len(sys.argv) > 2 else "trunkuser"
    password = sys.argv[3] if len(sys.argv) > 3 else "trunkpass"
    found = bad = 0
    with open(sys.argv[1], errors="replace") as f:
        for line in f:
            m = re.search(r"PROXY-AUTHORIZATION method=(\S+) (Digest .*)$", line.strip())
            if not m:
                continue
            found += 1
            method, p = m.group(1), params(m.group(2))
            ha1 = md5(f"{p.get('username')}:{p.get('realm')}:{password}")
            ha2 = md5(f"{method}:{p.get('uri')}")
            if p.get("qop"):
                want = md5(f"{ha1}:{p.get('nonce')}:{p.get('nc')}:{p.get('cnonce')}:{p['qop']}:{ha2}")
            else:
                want = md5(f"{ha1}:{p.get('nonce')}:{ha2}")
            ok = p.get("username") == user and p.get("response") == want
            bad += not ok
            print(f"{'OK ' if ok else 'BAD'} {method} uri={p.get('uri')} username={p.get('username')}")
    if not found:
        print("no PROXY-AUTHORIZATION lines found (run the uas with -trace_logs -log_file FILE)")
    return 0 if found and not bad else 1


if __name__ == "__main__":
    sys.exit(main())

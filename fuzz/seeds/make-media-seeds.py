#!/usr/bin/env python3
"""Writes the seed corpora of the media and fax fuzz targets (rtp_stats, media_streams,
ingest_stream, udptl_ifp, fax_tiff) under fuzz/corpus/<target>/.

    fuzz/seeds/make-media-seeds.py                 # hand-written seeds (from the RFCs, T.38 and
                                                   # the frames tests/media* send)
    fuzz/seeds/make-media-seeds.py --udptl-logs D  # also the datagrams of spandsp-peer `-v -v`
                                                   # logs (D/*.log), see fuzz/seeds/README.md

Idempotent: files are rewritten with the same bytes. Each corpus stays well under 200 KB.
"""
import argparse
import base64
import glob
import json
import os
import re
import shutil
import struct
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "corpus")
REPO = os.path.dirname(ROOT)

# The stream id the media_streams and ingest_stream targets' readers are built with.
SID = "MZ00000000000000000000000000000001"


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- RTP (RFC 3550, RFC 4733)

def rtp(seq, ts, ssrc=0x1234ABCD, pt=0, marker=False, csrcs=(), ext=None, payload=b"",
        padding=0):
    b0 = 0x80 | (0x20 if padding else 0) | (0x10 if ext is not None else 0) | len(csrcs)
    b1 = (0x80 if marker else 0) | pt
    out = struct.pack("!BBHII", b0, b1, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    for c in csrcs:
        out += struct.pack("!I", c)
    if ext is not None:
        profile, words = ext
        out += struct.pack("!HH", profile, len(words)) + b"".join(struct.pack("!I", w) for w in words)
    out += payload
    if padding:
        out += b"\x00" * (padding - 1) + bytes([padding])
    return out


def fit40(p):
    """rtp_stats splits its input into 40-octet datagrams."""
    assert len(p) <= 40, len(p)
    return p + b"\xff" * (40 - len(p))


def rtp_stats_seeds():
    t = "rtp_stats"
    pay = b"\xff" * 28
    write(t, "in-order.rtp", b"".join(fit40(rtp(100 + i, 160 * i, payload=pay)) for i in range(8)))
    write(t, "loss-and-reorder.rtp", b"".join(
        fit40(rtp(s, 160 * s, payload=pay)) for s in [1, 2, 4, 3, 7, 7, 8, 5, 9]))
    write(t, "seq-wrap.rtp", b"".join(
        fit40(rtp(s & 0xFFFF, 160 * s, payload=pay)) for s in range(65532, 65540)))
    # A jump larger than MAX_DROPOUT, then the next packet: a restarted sender (A.1).
    write(t, "restart-after-jump.rtp", b"".join(
        fit40(rtp(s, 160 * i, payload=pay)) for i, s in enumerate([10, 11, 40000, 40001, 40002])))
    write(t, "ssrc-change.rtp", b"".join(
        fit40(rtp(s, 160 * s, ssrc=ssrc, payload=pay))
        for s, ssrc in [(1, 1), (2, 1), (500, 2), (501, 2), (3, 1)]))
    write(t, "marker-csrc-ext.rtp",
          fit40(rtp(1, 0, marker=True, payload=pay))
          + fit40(rtp(2, 160, csrcs=(0x11111111, 0x22222222), payload=b"\x7f" * 20))
          + fit40(rtp(3, 320, ext=(0xBEDE, [0x10FF0000, 0x22AABB00]), payload=b"\x55" * 16))
          + fit40(rtp(4, 480, csrcs=(7,), ext=(0x1000, [1]), payload=b"\x00" * 12))
          + fit40(rtp(5, 640, padding=4, payload=b"\xd5" * 24)))
    # RFC 4733 events (PT 101) amid PCMU.
    ev = lambda e, end, vol, dur: bytes([e, (0x80 if end else 0) | vol]) + struct.pack("!H", dur)
    write(t, "dtmf-events.rtp", b"".join([
        fit40(rtp(20, 3200, payload=pay)),
        fit40(rtp(21, 3360, pt=101, marker=True, payload=ev(5, False, 10, 160))),
        fit40(rtp(22, 3360, pt=101, payload=ev(5, False, 10, 320))),
        fit40(rtp(23, 3360, pt=101, payload=ev(5, True, 10, 480))),
        fit40(rtp(24, 3360, pt=101, payload=ev(5, True, 10, 480))),
        fit40(rtp(25, 4000, payload=pay)),
    ]))
    # RTCP SR + RR (RFC 3550 6.4) and invalid versions/truncations.
    sr = struct.pack("!BBHI", 0x80, 200, 6, 0x1234ABCD) + struct.pack("!IIIII", 0xE5, 0x1, 1600, 10, 1600)
    rr = struct.pack("!BBHI", 0x81, 201, 7, 0x1234ABCD) + b"\x00" * 24
    write(t, "rtcp-and-junk.rtp", fit40(sr) + fit40(rr[:40]) + fit40(b"\x40\x00\x00\x01")
          + fit40(rtp(7, 0, payload=pay)) + b"\x80\x00\x00")


# ------------------------------------------------------------ media_streams (app → gateway)

def ulaw(n):
    return bytes((0xFF - (i % 32)) for i in range(n))


def pcm(n):
    return b"".join(struct.pack("<h", (i * 1031) % 30000 - 15000) for i in range(n // 2))


def j(obj):
    return json.dumps(obj, separators=(",", ":"))


def media_streams_seeds():
    t = "media_streams"
    mu = base64.b64encode(ulaw(160)).decode()
    write(t, "twilio-media.json", j({"event": "media", "streamSid": SID, "media": {"payload": mu}}))
    write(t, "twilio-mark.json", j({"event": "mark", "streamSid": SID, "mark": {"name": "greeting-done"}}))
    write(t, "twilio-clear.json", j({"event": "clear", "streamSid": SID}))
    p16 = base64.b64encode(pcm(320)).decode()
    write(t, "exotel-media.json", j({"event": "media", "stream_sid": SID, "sequence_number": "3",
                                     "media": {"chunk": "2", "timestamp": "40", "payload": p16}}))
    write(t, "exotel-mark.json", j({"event": "mark", "stream_sid": SID, "sequence_number": 4,
                                    "mark": {"name": "bot-turn-1"}}))
    write(t, "exotel-clear.json", j({"event": "clear", "stream_sid": SID, "sequence_number": "5"}))
    # A session through one reader: newline-separated frames, as the app of tests/media sends.
    write(t, "twilio-session.jsonl", "\n".join([
        j({"event": "media", "streamSid": SID, "media": {"payload": mu}}),
        j({"event": "media", "streamSid": SID, "media": {"payload": mu}}),
        j({"event": "mark", "streamSid": SID, "mark": {"name": "m1"}}),
        j({"event": "clear", "streamSid": SID}),
    ]))
    write(t, "exotel-session.jsonl", "\n".join([
        j({"event": "media", "stream_sid": SID, "sequence_number": 1, "media": {"payload": p16}}),
        j({"event": "mark", "stream_sid": SID, "sequence_number": 2, "mark": {"name": "a"}}),
        j({"event": "media", "stream_sid": SID, "sequence_number": 3, "media": {"payload": p16}}),
        j({"event": "clear", "streamSid": SID}),
    ]))
    write(t, "wrong-events.jsonl", "\n".join([
        j({"event": "start", "streamSid": SID}),
        j({"event": "dtmf", "streamSid": SID, "dtmf": {"digit": "1"}}),
        j({"event": "media", "streamSid": "MZ2", "media": {"payload": "/w=="}}),
        j({"event": "media", "streamSid": SID, "media": {"payload": "not base64!"}}),
        j({"event": "media", "stream_sid": SID, "sequence_number": 2, "media": {"payload": p16}}),
        j({"event": "media", "stream_sid": SID, "sequence_number": 2, "media": {"payload": p16}}),
        '{"event":"mark","streamSid":"' + SID + '","mark":{"name":""}}',
        '{"event":', '[]', '{"event":"stop"}',
    ]))
    # RFC 4733 telephone-event payloads and RTP datagrams (the other two decoders of the target).
    write(t, "telephone-event-5.bin", bytes([5, 0x0A]) + struct.pack("!H", 800))
    write(t, "telephone-event-end.bin", bytes([11, 0x8A]) + struct.pack("!H", 1600))
    write(t, "rtp-pcmu.rtp", rtp(1, 160, pt=0, payload=ulaw(160)))
    write(t, "rtp-pcma.rtp", rtp(2, 320, pt=8, marker=True, payload=bytes([0xD5]) * 160))
    write(t, "rtp-event.rtp", rtp(3, 480, pt=101, marker=True, payload=bytes([1, 0x8A, 3, 0x20])))
    write(t, "rtp-csrc-ext-pad.rtp", rtp(4, 640, pt=0, csrcs=(9,), ext=(0xBEDE, [0x10FF0000]),
                                         padding=3, payload=ulaw(80)))


# ------------------------------------------------------------ ingest_stream (CPaaS → gateway)

def ingest_seeds():
    t = "ingest_stream"
    acc, call = "AC7a1b2c3d4e5f60718293a4b5c6d7e8f9", "CA0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    mu = base64.b64encode(ulaw(160)).decode()
    tw = [
        j({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
        j({"event": "start", "sequenceNumber": "1", "start": {
            "accountSid": acc, "streamSid": SID, "callSid": call, "tracks": ["inbound"],
            "customParameters": {"caller": "Ada", "queue": "support"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
           "streamSid": SID}),
        j({"event": "media", "sequenceNumber": "2", "media": {
            "track": "inbound", "chunk": "1", "timestamp": "5", "payload": mu}, "streamSid": SID}),
        j({"event": "dtmf", "streamSid": SID, "sequenceNumber": "3",
           "dtmf": {"track": "inbound_track", "digit": "7"}}),
        j({"event": "mark", "sequenceNumber": "4", "streamSid": SID, "mark": {"name": "prompt-1"}}),
        j({"event": "clear", "streamSid": SID}),
        j({"event": "stop", "sequenceNumber": "5", "streamSid": SID,
           "stop": {"accountSid": acc, "callSid": call}}),
    ]
    for i, name in enumerate(["connected", "start", "media", "dtmf", "mark", "clear", "stop"]):
        write(t, f"twilio-{name}.json", tw[i])
    write(t, "twilio-session.jsonl", "\n".join(f for f in tw if '"clear"' not in f))
    p16 = base64.b64encode(pcm(320)).decode()
    ex = [
        j({"event": "connected"}),
        j({"event": "start", "sequence_number": 1, "stream_sid": SID, "start": {
            "stream_sid": SID, "call_sid": "7f3e9b2c1a0d4e5f6a7b8c9d0e1f2a3b",
            "account_sid": "acme_corp1", "from": "09876543210", "to": "08047491899",
            "custom_parameters": {"lang": "hi-IN"},
            "media_format": {"encoding": "base64", "sample_rate": "8000", "bit_rate": "128kbps"}}}),
        j({"event": "media", "sequence_number": 2, "stream_sid": SID,
           "media": {"chunk": 1, "timestamp": "108", "payload": p16}}),
        j({"event": "dtmf", "sequence_number": 3, "stream_sid": SID,
           "dtmf": {"duration": "240", "digit": "#"}}),
        j({"event": "mark", "sequence_number": 4, "stream_sid": SID, "mark": {"name": "bot-turn-1"}}),
        j({"event": "clear", "stream_sid": SID, "sequence_number": "5"}),
        j({"event": "stop", "sequence_number": 6, "stream_sid": SID, "stop": {
            "call_sid": "7f3e9b2c1a0d4e5f6a7b8c9d0e1f2a3b", "account_sid": "acme_corp1",
            "reason": "callended"}}),
    ]
    for i, name in enumerate(["connected", "start", "media", "dtmf", "mark", "clear", "stop"]):
        write(t, f"exotel-{name}.json", ex[i])
    write(t, "exotel-session.jsonl", "\n".join(f for f in ex if '"clear"' not in f))
    p24 = base64.b64encode(pcm(960)).decode()
    write(t, "exotel-start-24k.jsonl", "\n".join([
        j({"event": "start", "stream_sid": SID, "start": {
            "stream_sid": SID, "call_sid": "c1", "account_sid": "a1",
            "media_format": {"encoding": "base64", "sample_rate": 24000}}}),
        j({"event": "media", "stream_sid": SID, "media": {"payload": p24}}),
    ]))
    write(t, "binary-frame.bin", b"\x00\xff\xfe\x80binary")


# ------------------------------------------------------------ UDPTL / T.38 IFP (T.38 Annex A/B)

def length_det(n):
    assert n < 16384
    return bytes([n]) if n < 128 else struct.pack("!H", 0x8000 | n)


def udptl(seq, primary, secondaries=None, fec=None):
    out = struct.pack("!H", seq) + length_det(len(primary)) + primary
    if fec is None:
        secondaries = secondaries or []
        out += b"\x00" + length_det(len(secondaries))
        for s in secondaries:
            out += length_det(len(s)) + s
    else:
        npackets, entries = fec
        out += b"\x80" + length_det(1) + bytes([npackets]) + length_det(len(entries))
        for e in entries:
            out += length_det(len(e)) + e
    return out


def xor(*bufs):
    n = max(len(b) for b in bufs)
    out = bytearray(n)
    for b in bufs:
        for i, x in enumerate(b):
            out[i] ^= x
    return bytes(out)


def udptl_seeds():
    t = "udptl_ifp"
    # T.30 indicators (type-of-msg 0): the CHOICE bit 0, then the 4-bit (extensible) indicator.
    ind = {name: bytes([i << 1]) for i, name in enumerate(
        ["no-signal", "cng", "ced", "v21-preamble", "v27-2400-training", "v27-4800-training",
         "v29-7200-training", "v29-9600-training", "v17-7200-short", "v17-7200-long",
         "v17-9600-short", "v17-9600-long", "v17-12000-short", "v17-12000-long",
         "v17-14400-short", "v17-14400-long"])}
    for name in ["no-signal", "cng", "ced", "v21-preamble", "v29-9600-training",
                 "v17-14400-long"]:
        write(t, f"ifp-indicator-{name}.ifp", ind[name])
    # Data IFPs as spandsp writes them (README of tests/fax): v21 HDLC octet, FCS-OK, sig-end.
    write(t, "ifp-v2-hdlc-data.ifp", bytes.fromhex("c001800000ff"))
    write(t, "ifp-v2-hdlc-fcs-ok-sig-end.ifp", bytes.fromhex("c00120"))
    write(t, "ifp-v0-hdlc-fcs-ok-sig-end.ifp", bytes.fromhex("c00140"))
    write(t, "ifp-v0-t4-non-ecm-sig-end.ifp", bytes.fromhex("d001f0000a") + bytes(11))
    write(t, "ifp-v2-t4-non-ecm-sig-end.ifp", bytes.fromhex("d001b8000a") + bytes(11))
    # UDPTL datagrams: redundancy 0 and 3 (the README's captured examples), and FEC.
    write(t, "udptl-no-signal-red0.udptl", bytes.fromhex("0000010000" "00"))
    write(t, "udptl-v21-preamble-red3.udptl", bytes.fromhex("00030106000301000104" "0100"))
    write(t, "udptl-hdlc-red3.udptl", bytes.fromhex("000406c001800000ff000301060100" "0104"))
    prim = [bytes.fromhex("c001800000%02x" % b) for b in (0xff, 0x13, 0x80, 0x00, 0x2a, 0x55)]
    # FEC, npackets 2, span of 2 entries: entry m = XOR of packets seq-4+m and seq-2+m.
    seq = 10
    older = {seq - 4 + k: prim[k] for k in range(4)}
    entries = [xor(older[seq - 4 + m], older[seq - 2 + m]) for m in range(2)]
    write(t, "udptl-fec-2x2.udptl", udptl(seq, prim[4], fec=(2, entries)))
    write(t, "udptl-fec-3x1.udptl", udptl(7, prim[5], fec=(3, [xor(prim[0], prim[1], prim[2])])))
    write(t, "udptl-red-empty-secondary.udptl", udptl(5, ind["ced"], [b"", ind["cng"]]))
    long_data = bytes.fromhex("d001b80035") + bytes(range(54))
    write(t, "udptl-t4-data-long-length.udptl", udptl(300, long_data * 3, [long_data, long_data]))
    # Sessions for the UdptlRx part: datagrams each prefixed by a one-octet length.
    def session(datagrams):
        return b"".join(bytes([len(d)]) + d for d in datagrams)
    dg = [udptl(s, prim[s % 6], [prim[(s - k) % 6] for k in range(1, min(s, 3) + 1)])
          for s in range(8)]
    write(t, "session-red3-in-order.bin", session(dg))
    write(t, "session-red3-loss.bin", session([dg[0], dg[1], dg[4], dg[3], dg[7], dg[7]]))
    fdg = []
    for s in range(8):
        if s < 4:
            fdg.append(udptl(s, prim[s % 6], [prim[(s - 1) % 6]] if s else []))
        else:
            es = [xor(prim[(s - 4 + m) % 6], prim[(s - 2 + m) % 6]) for m in range(2)]
            fdg.append(udptl(s, prim[s % 6], fec=(2, es)))
    write(t, "session-fec-loss.bin", session([fdg[0], fdg[1], fdg[2], fdg[3], fdg[5], fdg[6], fdg[7]]))
    write(t, "session-wrap-and-restart.bin", session(
        [udptl(65534, ind["cng"]), udptl(65535, ind["ced"], [ind["cng"]]),
         udptl(0, ind["no-signal"], [ind["ced"], ind["cng"]]), udptl(2000, ind["cng"])]))


def udptl_from_logs(logdir):
    """Distinct datagrams from spandsp-peer -v -v logs: the first of each IFP kind per version,
    and one whole captured session (length-prefixed) per log, cut to fit."""
    t = "udptl_ifp"
    pat = re.compile(r"(tx|rx) udptl seq=(\d+) len=(\d+) datagram=([0-9a-f]+)")
    for path in sorted(glob.glob(os.path.join(logdir, "*.log"))):
        case = os.path.basename(path)[:-4]
        seen, session = set(), []
        kinds = {}
        for line in open(path, errors="replace"):
            m = pat.search(line)
            if not m or m.group(1) != "tx":
                continue
            data = bytes.fromhex(m.group(4))
            if data in seen:
                continue
            seen.add(data)
            if len(data) <= 255 and len(session) < 60:
                session.append(data)
            # The IFP kind: first octet of the primary after seq and length.
            # The IFP kind: the primary's first three octets (indicator, or data type and the
            # first field's type), and whether redundancy made the datagram long.
            key = (data[3:6].hex(), len(data) > 60)
            kinds.setdefault(key, data)
        for (kind, big), data in sorted(kinds.items()):
            write(t, f"spandsp-{case}-{kind}{'-long' if big else ''}.udptl", data)
        if session:
            write(t, f"spandsp-{case}-session.bin",
                  b"".join(bytes([len(d)]) + d for d in session))


# ------------------------------------------------------------ fax_tiff

def fax_seeds():
    t = "fax_tiff"
    fix = os.path.join(REPO, "tests", "fixtures", "fax")
    # The small fixtures: every compression the reader knows, odd layouts, wrong colour types.
    for name in ["odd-g3-cm.tif", "odd-g4-minisblack.tif", "odd-lzw.tif",
                 "odd-none-minisblack.tif", "odd-none-strips-lsb.tif", "odd-packbits.tif",
                 "odd-rle.tif", "wide-g3.tif", "wide-g4.tif", "colour.tif", "grey.tif",
                 "g4-bigendian-lsb.tif"]:
        shutil.copyfile(os.path.join(fix, name), os.path.join(CORPUS, t, name))
    # MH (T.4 1-D), MR (T.4 2-D, with EOL fill) and MMR (T.6) of one small page, by libtiff's
    # tiffcp, as one strip; and each strip alone as a raw stream for the target's second half
    # (two octets of row width, then the coded rows).
    if shutil.which("tiffcp") is None:
        print("make-media-seeds: no tiffcp (libtiff-tools): MH/MR/MMR seeds kept as they are")
        return
    src = os.path.join(fix, "odd-none-minisblack.tif")
    for name, opts in [("mh", ["-c", "g3:1d"]), ("mr", ["-c", "g3:2d:fill"]),
                       ("mmr", ["-c", "g4"])]:
        out = os.path.join(CORPUS, t, f"odd-{name}-one-strip.tif")
        subprocess.run(["tiffcp", *opts, "-r", "100000", src, out], check=True)
        width, strip = first_strip(open(out, "rb").read())
        write(t, f"raw-{name}-w{width}.t4", struct.pack("!H", width - 1) + strip)


def first_strip(tif):
    """The width and the first strip of a little- or big-endian TIFF."""
    e = "<" if tif[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", tif[4:8])
    (n,) = struct.unpack(e + "H", tif[ifd:ifd + 2])
    tags = {}
    for i in range(n):
        tag, typ, count, value = struct.unpack(e + "HHII", tif[ifd + 2 + 12 * i:ifd + 14 + 12 * i])
        if typ == 3 and count == 1:
            value = value & 0xFFFF if e == "<" else value >> 16
        tags[tag] = value
    off, size = tags[273], tags[279]
    return tags[256], tif[off:off + size]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--udptl-logs", help="directory of spandsp-peer -v -v logs")
    args = ap.parse_args()
    os.makedirs(os.path.join(CORPUS, "fax_tiff"), exist_ok=True)
    rtp_stats_seeds()
    media_streams_seeds()
    ingest_seeds()
    udptl_seeds()
    if args.udptl_logs:
        udptl_from_logs(args.udptl_logs)
    fax_seeds()


if __name__ == "__main__":
    main()

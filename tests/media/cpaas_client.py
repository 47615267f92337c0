#!/usr/bin/env python3
"""A CPaaS for the ingest tests: connects to the gateway's media-ingest server with the
Python `websockets` client, the way Twilio Media Streams or Exotel stream a call to an app,
and reports what happened as one JSON object on stdout:

  {"status": 101 | HTTP status of a refusal, "body": refusal body,
   "received": [messages from the gateway], "close_code": N, "close_reason": "...",
   "sent_media": N}

Usage: cpaas_client.py URL [--token T | --query-token T] [--mode twilio|exotel]
                       [--media-ms 2000] [--digit 5] [--flood N] [--hold-ms N] [--no-stop]
                       [--ca CERT]
A wss:// URL is verified against --ca (a PEM file, e.g. the test's self-signed certificate)
instead of the system roots. A connection that fails before any HTTP status (refused, TLS
failure, not an HTTP answer) reports status 0 and the error.
"""

import argparse
import asyncio
import base64
import json
import math
import ssl
import struct
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

BIAS = 0x84


def ulaw(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), 32635) + BIAS
    exponent, mask = 7, 0x4000
    while exponent > 0 and not (sample & mask):
        exponent -= 1
        mask >>= 1
    return ~(sign | (exponent << 4) | ((sample >> (exponent + 3)) & 0x0F)) & 0xFF


def frame(n: int, mode: str) -> bytes:
    """20 ms of a 500 Hz tone, frame n (8 kHz)."""
    samples = [int(10000 * math.sin(2 * math.pi * 500 * (n * 160 + i) / 8000)) for i in range(160)]
    if mode == "twilio":
        return bytes(ulaw(s) for s in samples)
    return struct.pack("<160h", *samples)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--token")
    p.add_argument("--mode", default="twilio")
    p.add_argument("--media-ms", type=int, default=2000)
    p.add_argument("--digit")
    p.add_argument("--flood", type=int, default=0)
    p.add_argument("--hold-ms", type=int, default=500)
    p.add_argument("--no-stop", action="store_true")
    p.add_argument("--ca")
    p.add_argument("--from", dest="caller")
    a = p.parse_args()
    tls = {}
    if a.url.startswith("wss://"):
        tls["ssl"] = ssl.create_default_context(cafile=a.ca) if a.ca else ssl.create_default_context()
    out = {"received": [], "sent_media": 0}
    headers = {"Authorization": f"Bearer {a.token}"} if a.token else {}
    tw = a.mode == "twilio"
    sid_key = "streamSid" if tw else "stream_sid"
    seq_key = "sequenceNumber" if tw else "sequence_number"
    sid = "MZ" + "0" * 31 + "1"
    seq = 0

    def msg(event: str, body: dict) -> str:
        nonlocal seq
        seq += 1
        m = {"event": event, seq_key: str(seq), sid_key: sid}
        m.update(body)
        return json.dumps(m)

    try:
        async with connect(a.url, additional_headers=headers, max_size=1 << 20, open_timeout=5, **tls) as ws:
            out["status"] = 101

            async def reader():
                try:
                    async for raw in ws:
                        out["received"].append(json.loads(raw))
                except ConnectionClosed:
                    pass

            task = asyncio.ensure_future(reader())
            if tw:
                await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
                start = {"accountSid": "AC1", "streamSid": sid, "callSid": "CA1", "tracks": ["inbound"],
                         "customParameters": {"who": "cpaas"},
                         "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}
            else:
                await ws.send(json.dumps({"event": "connected"}))
                start = {"stream_sid": sid, "call_sid": "CA1", "account_sid": "AC1", "from": "4930222",
                         "to": "5000", "custom_parameters": {"who": "cpaas"},
                         "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"}}
            if a.caller is not None:
                start["from"] = a.caller
            await ws.send(msg("start", {"start": start}))
            try:
                if a.flood:
                    for n in range(a.flood):
                        await ws.send(msg("media", {"media": {"track": "inbound", "chunk": str(n + 1), "timestamp": str(n * 20),
                                                              "payload": base64.b64encode(frame(n, a.mode)).decode()}}))
                        out["sent_media"] += 1
                else:
                    for n in range(a.media_ms // 20):
                        media = {"chunk": str(n + 1), "timestamp": str(n * 20),
                                 "payload": base64.b64encode(frame(n, a.mode)).decode()}
                        if tw:
                            media["track"] = "inbound"
                        await ws.send(msg("media", {"media": media}))
                        out["sent_media"] += 1
                        await asyncio.sleep(0.02)
                    if a.digit:
                        await ws.send(msg("dtmf", {"dtmf": {"track": "inbound_track", "digit": a.digit}}))
                    await asyncio.sleep(a.hold_ms / 1000)
                    if not a.no_stop:
                        await ws.send(msg("stop", {"stop": {"accountSid": "AC1", "callSid": "CA1"}}))
            except ConnectionClosed:
                pass
            try:
                await asyncio.wait_for(task, timeout=5)
            except asyncio.TimeoutError:
                await ws.close()
            out["close_code"] = ws.close_code
            out["close_reason"] = ws.close_reason
    except InvalidStatus as e:
        out["status"] = e.response.status_code
        out["body"] = (e.response.body or b"").decode(errors="replace")
    except (OSError, asyncio.TimeoutError, InvalidHandshake, EOFError) as e:
        out["status"] = 0
        out["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)

#!/usr/bin/env python3
"""A media-stream app for the tests: a WebSocket server (Python `websockets`) that speaks
the Twilio Media Streams or Exotel shapes the way a real voice bot does.

It logs every message the gateway sends, one JSON line per message with its arrival time
(`{"t": seconds, "conn": n, "msg": {...}}`), and after `start` runs a script of actions:

  play:MS[:HZ]   send MS milliseconds of a sine tone (default 1000 Hz) as `media` messages,
                 100 ms per message, all at once (as a TTS engine bursts audio)
  mark:NAME      send a `mark`
  clear          send a `clear`
  sleep:MS       wait
  close          close the connection

Usage: app_server.py --mode twilio|exotel --rate 8000 --port-file F --log F [--script A,B,...]
                     [--tls-cert CERT --tls-key KEY]
The bound port is written to --port-file once listening. With --tls-cert/--tls-key the server
speaks wss:// (TLS) with that certificate.
"""

import argparse
import asyncio
import base64
import json
import math
import ssl
import struct
import sys
import time

import websockets

BIAS = 0x84
CLIP = 32635


def ulaw(sample: int) -> int:
    """G.711 µ-law encoding of one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    if sample < 0:
        sample = -sample
    sample = min(sample, CLIP) + BIAS
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not (sample & mask):
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone(ms: int, hz: float, rate: int) -> list:
    n = ms * rate // 1000
    return [int(12000 * math.sin(2 * math.pi * hz * i / rate)) for i in range(n)]


def payload(samples: list, mode: str) -> bytes:
    if mode == "twilio":
        return bytes(ulaw(s) for s in samples)
    return struct.pack("<%dh" % len(samples), *samples)


class App:
    def __init__(self, args):
        self.args = args
        self.log = open(args.log, "a", buffering=1)
        self.conns = 0
        self.t0 = time.monotonic()

    def record(self, conn: int, msg) -> None:
        self.log.write(json.dumps({"t": time.monotonic() - self.t0, "conn": conn, "msg": msg}) + "\n")

    def sid_key(self) -> str:
        return "streamSid" if self.args.mode == "twilio" else "stream_sid"

    async def run_script(self, ws, sid: str, conn: int) -> None:
        seq = 0
        for action in [a for a in self.args.script.split(",") if a]:
            parts = action.split(":")
            kind = parts[0]
            if kind == "play":
                ms = int(parts[1])
                hz = float(parts[2]) if len(parts) > 2 else 1000.0
                samples = tone(ms, hz, self.args.rate)
                step = self.args.rate // 10  # 100 ms per message
                for off in range(0, len(samples), step):
                    seq += 1
                    msg = {"event": "media", self.sid_key(): sid,
                           "media": {"payload": base64.b64encode(payload(samples[off:off + step], self.args.mode)).decode()}}
                    if self.args.mode == "exotel":
                        msg["sequence_number"] = str(seq)
                    await ws.send(json.dumps(msg))
            elif kind == "mark":
                seq += 1
                msg = {"event": "mark", self.sid_key(): sid, "mark": {"name": parts[1]}}
                if self.args.mode == "exotel":
                    msg["sequence_number"] = str(seq)
                await ws.send(json.dumps(msg))
            elif kind == "clear":
                seq += 1
                msg = {"event": "clear", self.sid_key(): sid}
                if self.args.mode == "exotel":
                    msg["sequence_number"] = str(seq)
                await ws.send(json.dumps(msg))
            elif kind == "sleep":
                await asyncio.sleep(int(parts[1]) / 1000)
            elif kind == "close":
                await ws.close()
                return
            self.record(conn, {"sent": action})

    async def handle(self, ws) -> None:
        self.conns += 1
        conn = self.conns
        self.record(conn, {"connection": conn, "path": ws.request.path,
                           "authorization": ws.request.headers.get("Authorization")})
        script = None
        try:
            async for raw in ws:
                msg = json.loads(raw)
                self.record(conn, msg)
                if msg.get("event") == "start" and script is None:
                    sid = msg.get(self.sid_key()) or msg["start"].get(self.sid_key())
                    script = asyncio.ensure_future(self.run_script(ws, sid, conn))
        except websockets.ConnectionClosed:
            pass
        self.record(conn, {"closed": conn})
        if script is not None:
            script.cancel()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["twilio", "exotel"], default="twilio")
    p.add_argument("--rate", type=int, default=8000)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--script", default="")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    args = p.parse_args()
    app = App(args)
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    async with websockets.serve(app.handle, "127.0.0.1", 0, max_size=1 << 20, ssl=tls) as server:
        port = server.sockets[0].getsockname()[1]
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os
        os.replace(args.port_file + ".tmp", args.port_file)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)

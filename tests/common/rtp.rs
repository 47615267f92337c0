//! The caller's media for tests where the test itself is the RTP endpoint of a SIPp call.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::Gateway;

pub fn decode_ulaw(code: u8) -> i16 {
    let c = !code;
    let sign = c & 0x80;
    let exponent = (c >> 4) & 0x07;
    let mantissa = c & 0x0f;
    let magnitude = ((i32::from(mantissa) << 3) + 0x84) << exponent;
    let v = magnitude - 0x84;
    (if sign != 0 { -v } else { v }) as i16
}

pub fn ulaw_encode(sample: i16) -> u8 {
    let sign = if sample < 0 { 0x80 } else { 0 };
    let mut s = i32::from(sample).abs().min(32635) + 0x84;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    s = sign | (exponent << 4) | mantissa;
    !(s as u8)
}

impl RtpPeer {
    /// Send `frames` 20 ms PCMU frames of a 440 Hz tone to `to`, paced.
    pub fn send_tone(&self, to: SocketAddr, frames: u16) {
        for i in 0..frames {
            let mut pkt = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
            pkt[2..4].copy_from_slice(&i.to_be_bytes());
            pkt[4..8].copy_from_slice(&(u32::from(i) * 160).to_be_bytes());
            for n in 0..160u32 {
                let t = f64::from(u32::from(i) * 160 + n) / 8000.0;
                let v = (t * 440.0 * 2.0 * std::f64::consts::PI).sin() * 10000.0;
                pkt.push(ulaw_encode(v as i16));
            }
            self.socket.send_to(&pkt, to).unwrap();
            // pacing: one 20 ms frame every 20 ms, as a phone sends them.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The call's RTP port on the gateway, once the call is up.
pub fn call_rtp(gw: &Gateway) -> (String, SocketAddr) {
    let calls = gw.wait_calls(Duration::from_secs(10), |c| {
        c.first().is_some_and(|c| c["state"] == "answered")
    });
    let call = calls.first().expect("a call").clone();
    let port = call["legs"][0]["rtp_port"].as_u64().expect("rtp port") as u16;
    (
        call["id"].as_str().unwrap().to_string(),
        SocketAddr::from(([127, 0, 0, 1], port)),
    )
}

/// The caller's RTP endpoint: sends silence (so the call has media both ways) and counts
/// the frames of the app's tone that come back.
pub struct RtpPeer {
    pub socket: UdpSocket,
}

impl RtpPeer {
    pub fn bind() -> RtpPeer {
        let port = super::free_port();
        let socket = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        RtpPeer { socket }
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    /// Receive for `dur`; returns (packets, packets carrying the tone).
    pub fn listen(&self, dur: Duration) -> (usize, usize) {
        let deadline = Instant::now() + dur;
        let (mut all, mut loud) = (0, 0);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            if n < 12 + 160 || buf[1] & 0x7f != 0 {
                continue;
            }
            all += 1;
            let peak = buf[12..n]
                .iter()
                .map(|&b| decode_ulaw(b).unsigned_abs())
                .max()
                .unwrap_or(0);
            if peak > 4000 {
                loud += 1;
            }
        }
        (all, loud)
    }
}

/// A SIPp caller in the background: `scenario` (one whose SDP points at `[$rtp_port]`) calls
/// `number` with `peer` as its media endpoint; `extra` SIPp arguments (e.g. `-d MS`).
pub fn caller(
    gw: &Gateway,
    scenario: &'static str,
    number: &str,
    peer: &RtpPeer,
    extra: &[&str],
) -> std::thread::JoinHandle<super::Run> {
    let sip = gw.sip();
    let mut args: Vec<String> = ["-s", number, "-m", "1", "-set", "rtp_port"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(peer.port().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    std::thread::spawn(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        super::uac(scenario, &sip, &refs, Duration::from_secs(30))
    })
}

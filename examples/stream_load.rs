//! Load peer for `scripts/bench-streams`: the far end of N calls streamed to an app.
//!
//! It is both sides the gateway talks to: the callers' RTP endpoint (one UDP port that every
//! call's SDP points at) and the Twilio-style WebSocket app the calls are streamed to. Every
//! RTP packet it sends carries a tag (call number, sequence) in its µ-law payload, which
//! survives the gateway's µ-law → PCM → µ-law path unchanged; when the tag comes back in a
//! `media` message, the time since the packet was sent is the latency the gateway added from
//! RTP to WebSocket frame.
//!
//! Usage: stream_load WS_PORT RTP_PORT SECONDS — prints one JSON report on stdout at the end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::StreamExt;
use tokio::net::{TcpListener, UdpSocket};

/// Bytes 0x10..=0x1F survive µ-law decode/encode (unlike 0x7F, the negative zero).
fn tag(call: u16, seq: u32, out: &mut Vec<u8>) {
    for b in call.to_be_bytes().into_iter().chain(seq.to_be_bytes()) {
        out.push(0x10 | (b >> 4));
        out.push(0x10 | (b & 0x0f));
    }
}

fn untag(p: &[u8]) -> Option<(u16, u32)> {
    if p.len() < 12 || p[..12].iter().any(|b| b & 0xf0 != 0x10) {
        return None;
    }
    let b: Vec<u8> = p[..12]
        .chunks(2)
        .map(|c| (c[0] << 4) | (c[1] & 0x0f))
        .collect();
    Some((
        u16::from_be_bytes([b[0], b[1]]),
        u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
    ))
}

#[derive(Default)]
struct Shared {
    sent: Mutex<HashMap<(u16, u32), Instant>>,
    latencies_us: Mutex<Vec<u64>>,
    media: AtomicU64,
    streams: AtomicU64,
    untagged: AtomicU64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (ws_port, rtp_port, secs): (u16, u16, u64) = match &args[1..] {
        [a, b, c] => (
            a.parse().unwrap_or(0),
            b.parse().unwrap_or(0),
            c.parse().unwrap_or(30),
        ),
        _ => {
            eprintln!("usage: stream_load WS_PORT RTP_PORT SECONDS");
            std::process::exit(2);
        }
    };
    let shared = Arc::new(Shared::default());
    let listener = TcpListener::bind(("127.0.0.1", ws_port)).await?;
    let ws_shared = Arc::clone(&shared);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let shared = Arc::clone(&ws_shared);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                shared.streams.fetch_add(1, Ordering::Relaxed);
                while let Some(Ok(msg)) = ws.next().await {
                    let received = Instant::now();
                    let Ok(text) = msg.to_text() else { continue };
                    if !text.contains("\"media\"") {
                        continue;
                    }
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
                        continue;
                    };
                    let Some(p) = v["media"]["payload"].as_str() else {
                        continue;
                    };
                    shared.media.fetch_add(1, Ordering::Relaxed);
                    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(p) else {
                        continue;
                    };
                    match untag(&bytes) {
                        Some(key) => {
                            let sent = shared.sent.lock().unwrap().remove(&key);
                            if let Some(t) = sent {
                                let us = received.duration_since(t).as_micros() as u64;
                                shared.latencies_us.lock().unwrap().push(us);
                            }
                        }
                        None => {
                            shared.untagged.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });

    // RTP: learn each call's gateway port from its first packet, then send one tagged
    // 20 ms PCMU frame to every call every 20 ms.
    let socket = Arc::new(UdpSocket::bind(("127.0.0.1", rtp_port)).await?);
    let calls: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
    let (rx_sock, rx_calls) = (Arc::clone(&socket), Arc::clone(&calls));
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = rx_sock.recv_from(&mut buf).await {
            let mut c = rx_calls.lock().unwrap();
            if !c.contains(&from) {
                c.push(from);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut seq: u32 = 0;
    let mut packet = Vec::with_capacity(12 + 160);
    while Instant::now() < deadline {
        tick.tick().await;
        seq = seq.wrapping_add(1);
        let targets = calls.lock().unwrap().clone();
        for (i, to) in targets.iter().enumerate() {
            let call = i as u16;
            packet.clear();
            packet.extend_from_slice(&[0x80, 0]);
            packet.extend_from_slice(&(seq as u16).to_be_bytes());
            packet.extend_from_slice(&seq.wrapping_mul(160).to_be_bytes());
            packet.extend_from_slice(&(0x5000_0000u32 + u32::from(call)).to_be_bytes());
            tag(call, seq, &mut packet);
            packet.resize(12 + 160, 0xff);
            shared
                .sent
                .lock()
                .unwrap()
                .insert((call, seq), Instant::now());
            let _ = socket.send_to(&packet, to).await;
        }
        // Forget tags that never came back (the first frames before a stream is up).
        if seq % 250 == 0 {
            let cutoff = Instant::now() - Duration::from_secs(5);
            shared.sent.lock().unwrap().retain(|_, t| *t > cutoff);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut l = shared.latencies_us.lock().unwrap().clone();
    l.sort_unstable();
    let pct = |p: f64| {
        if l.is_empty() {
            0
        } else {
            l[((l.len() - 1) as f64 * p) as usize]
        }
    };
    let report = serde_json::json!({
        "calls": calls.lock().unwrap().len(),
        "streams": shared.streams.load(Ordering::Relaxed),
        "media": shared.media.load(Ordering::Relaxed),
        "matched": l.len(),
        "untagged": shared.untagged.load(Ordering::Relaxed),
        "latency_us": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": l.last().copied().unwrap_or(0)},
    });
    println!("{report}");
    Ok(())
}

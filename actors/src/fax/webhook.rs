//! Fax status webhooks: a JSON POST to `[fax] webhook_url` when a job
//! succeeds or fails and when an inbound fax is complete, signed with
//! HMAC-SHA256 over `"{timestamp}.{body}"` with `[fax] webhook_secret`:
//! headers `X-Switchboard-Timestamp` (unix seconds) and
//! `X-Switchboard-Signature: sha256=<hex>`. Delivery is best effort with
//! three tries (1 s, 4 s apart); it never blocks a job. Only `http://` URLs
//! are supported so far; an `https://` URL is logged and skipped.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest answer read from a webhook server.
const MAX_ANSWER: u64 = 16 * 1024;

/// The signature header value for `body` sent at `ts`.
pub fn signature(secret: &[u8], ts: u64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Send `event` (a JSON object) to the webhook, if one is configured.
pub fn notify(config: &switchboard_config::FaxConfig, event: serde_json::Value) {
    let Some(url) = config.webhook_url.clone() else {
        return;
    };
    let secret = config
        .webhook_secret
        .as_ref()
        .map(|s| s.expose().as_bytes().to_vec());
    tokio::spawn(async move {
        let body = event.to_string().into_bytes();
        for (i, wait) in [0u64, 1, 4].into_iter().enumerate() {
            tokio::time::sleep(Duration::from_secs(wait)).await;
            match post(&url, secret.as_deref(), &body).await {
                Ok(code) if (200..300).contains(&code) => {
                    metrics::counter!("switchboard_fax_webhooks_total", "result" => "ok")
                        .increment(1);
                    return;
                }
                Ok(code) => tracing::warn!(code, attempt = i + 1, "fax webhook refused"),
                Err(err) => tracing::warn!(%err, attempt = i + 1, "fax webhook failed"),
            }
        }
        metrics::counter!("switchboard_fax_webhooks_total", "result" => "failed").increment(1);
    });
}

async fn post(url: &str, secret: Option<&[u8]>, body: &[u8]) -> std::io::Result<u16> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_string());
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// webhook URLs are supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: switchboard\r\nX-Switchboard-Timestamp: {ts}\r\n",
        body.len()
    );
    if let Some(secret) = secret {
        head.push_str(&format!(
            "X-Switchboard-Signature: {}\r\n",
            signature(secret, ts, body)
        ));
    }
    head.push_str("\r\n");
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut answer = Vec::new();
        s.take(MAX_ANSWER).read_to_end(&mut answer).await?;
        let status = std::str::from_utf8(&answer)
            .ok()
            .and_then(|t| t.split_whitespace().nth(1))
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| bad("malformed HTTP answer"))?;
        Ok(status)
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "webhook timed out"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Expected value from Python's hmac module:
        // hmac.new(b"Jefe", b"1700000000.{}", "sha256").hexdigest()
        let sig = signature(b"Jefe", 1_700_000_000, b"{}");
        assert_eq!(
            sig,
            "sha256=d3793e2b4103edfbd98cc19591832f5fad701d413db9fcae0ae7dab8184ed207"
        );
        assert_ne!(sig, signature(b"Jefe", 1_700_000_001, b"{}"));
        assert_ne!(sig, signature(b"other", 1_700_000_000, b"{}"));
    }
}

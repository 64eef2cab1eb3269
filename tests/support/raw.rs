//! A client that sends exactly the bytes a test writes: request lines in
//! absolute form, repeated or odd `Host` headers, and HTTP/2 requests whose
//! `:authority` and `host` disagree, over TLS with the SNI the test picks.
//! What browsers never send, attackers do.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::tls::TestCa;

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct RawResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn describe(&self) -> String {
        let head: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let body: String = self.body.chars().take(300).collect();
        format!("{}\n{}\n\n{body}", self.status, head.join("\n"))
    }
}

async fn connect(
    ca: &TestCa,
    port: u16,
    sni: &str,
    alpn: &[&[u8]],
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut cfg = ca.rustls_client_config()?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string())?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await?)
}

/// Sends `request` (the whole HTTP/1.1 request, `\r\n` line ends) over TLS
/// with `sni`, and reads the answer: to the end of its body, the end of a
/// 101's head, or the connection's end.
pub async fn http1(ca: &TestCa, port: u16, sni: &str, request: &str) -> anyhow::Result<RawResp> {
    let mut tls = connect(ca, port, sni, &[b"http/1.1"]).await?;
    tls.write_all(request.as_bytes()).await?;
    tls.flush().await?;
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(done) = complete(&buf) {
                return Ok::<_, anyhow::Error>(done);
            }
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => return Ok(buf.len()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let end = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .context("no complete answer within 10 s")??;
    parse(&buf[..end.min(buf.len())])
}

/// The length of a complete response in `buf`, if there is one.
fn complete(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if head.starts_with("http/1.1 101") || head.starts_with("http/1.0 101") {
        return Some(head_end);
    }
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return (buf.len() >= head_end + len).then_some(head_end + len);
    }
    if head.contains("transfer-encoding: chunked") {
        let body = &buf[head_end..];
        return body
            .windows(5)
            .position(|w| w == b"0\r\n\r\n")
            .map(|p| head_end + p + 5);
    }
    None
}

fn parse(buf: &[u8]) -> anyhow::Result<RawResp> {
    let text = String::from_utf8_lossy(buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!(
            "no response head in {:?}",
            text.chars().take(200).collect::<String>()
        );
    };
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(RawResp {
        status,
        headers,
        body: body.to_string(),
    })
}

/// One HTTP/2 GET over TLS (ALPN h2) with `:authority` from `uri` and the
/// extra `headers` as given, `host` included. `Err` when the controller
/// resets the stream or the connection: it refused the request.
pub async fn http2(
    ca: &TestCa,
    port: u16,
    sni: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<RawResp> {
    let tls = connect(ca, port, sni, &[b"h2"]).await?;
    let (client, conn) = h2::client::handshake(tls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await?;
    let mut req = http::Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (resp, _) = client.send_request(req.body(())?, true)?;
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .context("no HTTP/2 answer within 10 s")??;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    Ok(RawResp {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

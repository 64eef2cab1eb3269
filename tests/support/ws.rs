//! WebSocket client through the controller: TLS with the test CA, SNI and
//! Host of the workspace, TCP to 127.0.0.1.

use std::sync::Arc;

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::tls::TestCa;

pub enum Handshake {
    /// 101: connected; the first message the server sent.
    Open(
        Box<
            tokio_tungstenite::WebSocketStream<
                tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
            >,
        >,
    ),
    /// Refused with this HTTP status and Location.
    Refused {
        status: u16,
        location: Option<String>,
    },
}

pub async fn connect(
    ca: &TestCa,
    port: u16,
    url: &str,
    cookie: Option<&str>,
    origin: &str,
) -> anyhow::Result<Handshake> {
    let mut req = url.into_client_request()?;
    if let Some(c) = cookie {
        req.headers_mut().insert("cookie", c.parse()?);
    }
    req.headers_mut().insert("origin", origin.parse()?);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(ca.rustls_client_config()?));
    match tokio_tungstenite::client_async_tls_with_config(req, tcp, None, Some(connector)).await {
        Ok((stream, _resp)) => Ok(Handshake::Open(Box::new(stream))),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Ok(Handshake::Refused {
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        }),
        Err(e) => Err(e).context("WebSocket handshake"),
    }
}

/// Reads the next text message.
pub async fn next_text<S>(ws: &mut S) -> anyhow::Result<String>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
        .await
        .context("no WebSocket message within 10 s")?
        .context("WebSocket closed")??;
    Ok(msg.into_text()?.to_string())
}

pub async fn send_text<S>(ws: &mut S, text: &str) -> anyhow::Result<()>
where
    S: SinkExt<Message> + Unpin,
    <S as futures::Sink<Message>>::Error: std::error::Error + Send + Sync + 'static,
{
    ws.send(Message::Text(text.to_string().into())).await?;
    Ok(())
}

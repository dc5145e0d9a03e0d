//! `/healthz`, `/readyz` and `/metrics` on one port: a few lines of HTTP/1.0 over
//! tokio, since probes and Prometheus send nothing but a GET line.

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::metrics::Metrics;

/// The response to the request line's path.
fn respond(path: &str, metrics: &Metrics) -> (&'static str, &'static str, String) {
    match path.split('?').next().unwrap_or_default() {
        "/healthz" | "/readyz" | "/livez" => ("200 OK", "text/plain", "ok\n".into()),
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        _ => ("404 Not Found", "text/plain", "not found\n".into()),
    }
}

async fn serve_one(mut conn: TcpStream, metrics: Arc<Metrics>) {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    // The request line is all that is read; a slow or huge request is dropped.
    let read = async {
        while len < buf.len() {
            match conn.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => len += n,
            }
            if buf[..len].windows(2).any(|w| w == b"\r\n") {
                break;
            }
        }
    };
    if tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .is_err()
    {
        return;
    }
    let line = String::from_utf8_lossy(&buf[..len]);
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, kind, body) = respond(path, &metrics);
    let head = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes()).await;
    let _ = conn.write_all(body.as_bytes()).await;
    let _ = conn.shutdown().await;
}

/// Binds `addr`; returns the bound address and a future that serves until dropped.
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> std::io::Result<(SocketAddr, impl std::future::Future<Output = ()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, async move {
        loop {
            if let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve_one(conn, metrics.clone()));
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_probes_and_metrics() {
        let metrics = Arc::new(Metrics::default());
        let (addr, server) = bind("127.0.0.1:0".parse().unwrap(), metrics).await.unwrap();
        tokio::spawn(server);
        for (path, want) in [
            ("/healthz", "200 OK"),
            ("/metrics", "stash_operator_leader 0"),
            ("/nope", "404"),
        ] {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).await.unwrap();
            assert!(out.contains(want), "{path}: {out}");
        }
    }
}

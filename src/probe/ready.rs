//! HTTP and TCP probes: one attempt each, bounded by a timeout. `Ok` carries what passed
//! ("HTTP 200"), `Err` what failed ("HTTP 503", "connection refused", "timed out after 1s"),
//! for the log line.

use std::time::Duration;

use http_body_util::Empty;
use hyper::header::{HOST, USER_AGENT};
use tokio::net::TcpStream;

use crate::config::probe::HttpTarget;

/// The outcome of one probe attempt.
pub type Outcome = Result<String, String>;

/// GET `target`; a 2xx or 3xx status passes (as a Kubernetes HTTP probe).
pub async fn http(target: &HttpTarget, timeout: Duration) -> Outcome {
    bounded(timeout, async {
        let stream = TcpStream::connect(&target.address)
            .await
            .map_err(|e| format!("{}: {e}", target.address))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        // Drives the connection; ends when `sender` is dropped.
        tokio::spawn(conn);
        let request = hyper::Request::get(target.path.as_str())
            .header(HOST, target.host.as_str())
            .header(USER_AGENT, concat!("sup-probe/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let seen = format!("HTTP {}", status.as_u16());
        if status.is_success() || status.is_redirection() {
            Ok(seen)
        } else {
            Err(seen)
        }
    })
    .await
}

/// Connect to `address`; an accepted connection passes.
pub async fn tcp(address: &str, timeout: Duration) -> Outcome {
    bounded(timeout, async {
        match TcpStream::connect(address).await {
            Ok(_) => Ok(format!("{address} accepts connections")),
            Err(e) => Err(format!("{address}: {e}")),
        }
    })
    .await
}

async fn bounded(
    timeout: Duration,
    attempt: impl std::future::Future<Output = Outcome>,
) -> Outcome {
    match tokio::time::timeout(timeout, attempt).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "timed out after {}",
            crate::human::duration(timeout)
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::probe::parse_http;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot HTTP server answering `status`; returns its port.
    async fn serve(status: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(request.starts_with("GET /health HTTP/1.1\r\n"), "{request}");
            assert!(request.to_ascii_lowercase().contains("host: 127.0.0.1:"));
            let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            s.write_all(reply.as_bytes()).await.unwrap();
        });
        port
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn http_status_decides() {
        rt().block_on(async {
            let second = Duration::from_secs(1);
            let port = serve("200 OK").await;
            let target = parse_http(&format!("http://127.0.0.1:{port}/health")).unwrap();
            assert_eq!(http(&target, second).await, Ok("HTTP 200".into()));
            let port = serve("503 Service Unavailable").await;
            let target = parse_http(&format!("http://127.0.0.1:{port}/health")).unwrap();
            assert_eq!(http(&target, second).await, Err("HTTP 503".into()));
        });
    }

    #[test]
    fn a_silent_server_times_out_and_a_closed_port_is_refused() {
        rt().block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let target = parse_http(&format!("http://127.0.0.1:{port}/")).unwrap();
            // Accepted by the kernel's backlog, never answered.
            let outcome = http(&target, Duration::from_millis(100)).await;
            assert_eq!(outcome, Err("timed out after 100ms".into()));
            let address = format!("127.0.0.1:{port}");
            assert!(tcp(&address, Duration::from_secs(1)).await.is_ok());
            drop(listener);
            let outcome = tcp(&address, Duration::from_secs(1)).await;
            assert!(outcome.unwrap_err().contains("refused"));
        });
    }
}

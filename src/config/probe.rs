//! The `ready` and `health` keys of an app: what is checked, how often, and for how long.
//!
//! This is configuration only: running a check is the runtime's (`runtime::probe`),
//! deciding what a result means is the core's.

use std::time::Duration;

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Check {
    /// `notify = true`: the instance sends `READY=1` to its sd_notify socket.
    Notify,
    /// `http = "http://host:port/path"`: a GET answered with a 2xx or 3xx status.
    Http(HttpTarget),
    /// `tcp = "host:port"`: a connection is accepted.
    Tcp(String),
    /// `exec = [...]`: the command exits 0 (run like the app: its cwd, env and user).
    Exec(Vec<String>),
    /// `log = "regex"`: a line of the instance's output matches.
    Log(String),
}

impl Check {
    /// The key that selects it, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Notify => "notify",
            Check::Http(_) => "http",
            Check::Tcp(_) => "tcp",
            Check::Exec(_) => "exec",
            Check::Log(_) => "log",
        }
    }

    /// Checks the runtime starts on a timer (notify and log arrive on their own).
    pub fn is_polled(&self) -> bool {
        matches!(self, Check::Http(_) | Check::Tcp(_) | Check::Exec(_))
    }
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HttpTarget {
    /// The URL as written, for messages.
    pub url: String,
    /// `host:port` to connect to (port 80 when the URL has none).
    pub address: String,
    /// The `Host` header.
    pub host: String,
    /// Path and query, at least `/`.
    pub path: String,
}

/// `ready = { ... }`: until the check passes an instance is `starting`; if it has not
/// passed within `timeout`, the start failed (it is stopped and counted as a failure).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadySettings {
    /// What is checked.
    pub check: Check,
    /// How long an instance may take to become ready (default 30s).
    pub timeout: Duration,
    /// How often a polled check is tried (default 250ms).
    pub interval: Duration,
}

impl ReadySettings {
    /// `timeout` when the table sets none.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// `interval` when the table sets none.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);
}

/// `health = { ... }`: a liveness check of a ready instance; `failures` failed checks in a
/// row restart it with reason `probe`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthSettings {
    /// What is checked (http, tcp or exec).
    pub check: Check,
    /// Time between the end of one check and the start of the next (default 10s).
    pub interval: Duration,
    /// How long one check may take before it counts as failed (default 1s).
    pub timeout: Duration,
    /// Failed checks in a row that restart the instance (default 3).
    pub failures: u32,
}

impl HealthSettings {
    /// `interval` when the table sets none (as a Kubernetes probe's `periodSeconds`).
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
    /// `timeout` when the table sets none (as `timeoutSeconds`).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    /// `failures` when the table sets none (as `failureThreshold`).
    pub const DEFAULT_FAILURES: u32 = 3;
}

/// The smallest probe `interval`: probes faster than this only load the app.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Parse an `http://host[:port][/path]` URL; the error says what is wrong.
pub fn parse_http(url: &str) -> Result<HttpTarget, String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(if url.starts_with("https://") {
            format!("`{url}`: https is not supported by probes; probe the plain-HTTP port")
        } else {
            format!("`{url}` is not an http:// URL")
        });
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    if authority.contains('@') {
        return Err(format!(
            "`{url}`: user info in a probe URL is not supported"
        ));
    }
    let has_port = match authority.rfind(':') {
        // `[::1]` alone has colons but no port.
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    let address = if has_port {
        let (_, port) = authority.rsplit_once(':').unwrap_or_default();
        if port.parse::<u16>().is_err() {
            return Err(format!("`{url}`: invalid port `{port}`"));
        }
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    if path
        .chars()
        .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err(format!(
            "`{url}`: the path contains a space or control character"
        ));
    }
    Ok(HttpTarget {
        url: url.to_string(),
        address,
        host: authority.to_string(),
        path,
    })
}

/// Check a `host:port` address; the error says what is wrong.
pub fn check_tcp(address: &str) -> Result<(), String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("`{address}` has no port"));
    };
    if host.is_empty() {
        return Err(format!("`{address}` has no host"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{address}`: invalid port `{port}`")),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn http_urls() {
        let t = parse_http("http://127.0.0.1:3000/health?x=1").unwrap();
        assert_eq!(t.address, "127.0.0.1:3000");
        assert_eq!(t.host, "127.0.0.1:3000");
        assert_eq!(t.path, "/health?x=1");
        let t = parse_http("http://localhost").unwrap();
        assert_eq!((t.address.as_str(), t.path.as_str()), ("localhost:80", "/"));
        let t = parse_http("http://[::1]/").unwrap();
        assert_eq!(t.address, "[::1]:80");
        let t = parse_http("http://h?q").unwrap();
        assert_eq!(t.path, "/?q");
        for bad in [
            "https://x/",
            "ftp://x",
            "127.0.0.1:80",
            "http:///x",
            "http://x:99999/",
            "http://u@x/",
            "http://x/a b",
        ] {
            assert!(parse_http(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tcp_addresses() {
        assert!(check_tcp("127.0.0.1:6379").is_ok());
        assert!(check_tcp("[::1]:1").is_ok());
        assert!(check_tcp("localhost:80").is_ok());
        for bad in ["6379", ":80", "x:0", "x:http", "x:70000"] {
            assert!(check_tcp(bad).is_err(), "{bad}");
        }
    }
}

//! The `listen` key of an app: sockets supd binds once and hands to every instance, so N
//! instances share one port (the kernel spreads the connections), in any language, with
//! systemd's socket-activation protocol (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`).
//!
//! Configuration only: binding is the runtime's.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// One listening socket.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Listen {
    /// `tcp://IP:PORT` (`tcp://[::]:3000` for IPv6).
    Tcp(SocketAddr),
    /// `unix:///absolute/path`: a stream socket at that path.
    Unix(PathBuf),
}

/// What a `listen` entry must look like, for error messages.
pub const LISTEN_EXPECTED: &str =
    "an address like \"tcp://127.0.0.1:3000\", \"tcp://[::]:3000\" or \"unix:///run/app.sock\"";

/// The most sockets one app may listen on (they take fds 3, 4, ... in each instance).
pub const MAX_LISTEN: usize = 16;

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "tcp://{addr}"),
            Listen::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// Parse one `listen` entry; the error says what is wrong.
pub fn parse(text: &str) -> Result<Listen, String> {
    if let Some(rest) = text.strip_prefix("tcp://") {
        return match rest.parse::<SocketAddr>() {
            Ok(addr) if addr.port() == 0 => Err(format!(
                "`{text}`: port 0 would pick a different port each start"
            )),
            Ok(addr) => Ok(Listen::Tcp(addr)),
            Err(_) => Err(format!(
                "`{text}`: `{rest}` is not an IP address and port (host names are not resolved)"
            )),
        };
    }
    if let Some(rest) = text.strip_prefix("unix://") {
        let path = PathBuf::from(rest);
        if !path.is_absolute() {
            return Err(format!("`{text}`: the socket path must be absolute"));
        }
        // sun_path holds 108 bytes with the NUL.
        if rest.len() > 107 {
            return Err(format!("`{text}`: the path is too long for a Unix socket"));
        }
        return Ok(Listen::Unix(path));
    }
    Err(format!("`{text}` is neither tcp:// nor unix://"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse("tcp://127.0.0.1:3000").unwrap(),
            Listen::Tcp("127.0.0.1:3000".parse().unwrap())
        );
        assert_eq!(parse("tcp://[::]:80").unwrap().to_string(), "tcp://[::]:80");
        assert_eq!(
            parse("unix:///run/a.sock").unwrap(),
            Listen::Unix("/run/a.sock".into())
        );
        for bad in [
            "tcp://localhost:3000",
            "tcp://127.0.0.1",
            "tcp://127.0.0.1:0",
            "unix://run/a.sock",
            "http://127.0.0.1:80",
            "127.0.0.1:80",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

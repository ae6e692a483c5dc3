//! The blocking control-socket client used by `supctl`: connect, send requests, read
//! replies, match them by id.
//!
//! Plain `std::os::unix::net`, no tokio: supctl does one thing at a time and should start
//! fast. There is no read timeout, because a `restart` may legitimately take the app's
//! whole `kill_timeout`; a daemon that goes away is still noticed, as end of file. Nothing
//! here prints or decides exit codes; [`ClientError::is_unreachable`] tells the binary
//! which failures mean "supd is not there".

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::proto::{self, Command, ProtoError, Reply, Request};

/// The longest reply line read. Far above any real status (a few hundred bytes per
/// instance); it only stops a confused peer from filling memory.
const MAX_REPLY_LINE: u64 = 64 * 1024 * 1024;

/// Why talking to supd failed. Every message names the socket path.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed: no socket file, nobody listening, no permission, a path too
    /// long for a socket address… supd is not reachable at that path.
    #[error("cannot reach supd at {}: {}", path.display(), unreachable_reason(path, source))]
    Unreachable {
        /// The socket path tried.
        path: PathBuf,
        /// What `connect(2)` said.
        #[source]
        source: io::Error,
    },
    /// Reading or writing failed after the connection was made.
    #[error("talking to supd at {}: {}", path.display(), describe(source))]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The failed read or write.
        #[source]
        source: io::Error,
    },
    /// supd closed the connection before the terminal reply (it exited or crashed).
    #[error("supd at {} closed the connection without replying", path.display())]
    Closed {
        /// The socket path.
        path: PathBuf,
    },
    /// supd sent a line that is not a reply.
    #[error("bad reply from supd at {}: {source}", path.display())]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What was wrong with the line.
        #[source]
        source: ProtoError,
    },
    /// A reply longer than the client accepts.
    #[error("bad reply from supd at {}: a reply line is longer than {MAX_REPLY_LINE} bytes", path.display())]
    TooLong {
        /// The socket path.
        path: PathBuf,
    },
    /// A reply to another request, or a stream reply where one answer was expected.
    #[error("bad reply from supd at {}: {problem}", path.display())]
    Unexpected {
        /// The socket path.
        path: PathBuf,
        /// What did not match.
        problem: String,
    },
}

impl ClientError {
    /// Whether supd could not be reached at all (`supctl` exits 3), as opposed to a
    /// failure in the middle of a conversation with a daemon that was there.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }

    /// A one-word class for machine-readable output: `unreachable` (supd is not there),
    /// `connection` (it went away or the socket failed mid-request) or `protocol` (it
    /// answered something that is not a proper reply).
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Unreachable { .. } => "unreachable",
            ClientError::Io { .. } | ClientError::Closed { .. } => "connection",
            ClientError::Protocol { .. }
            | ClientError::TooLong { .. }
            | ClientError::Unexpected { .. } => "protocol",
        }
    }
}

/// The OS's words for an error, without Rust's " (os error 2)" suffix.
fn describe(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => error.to_string(),
    }
}

/// Why `connect` failed, with a hint at the usual cause.
fn unreachable_reason(path: &Path, error: &io::Error) -> String {
    // sun_path holds 108 bytes with the terminating NUL; std's own message for a longer
    // path ("path must be shorter than SUN_LEN") means nothing to most users.
    if error.raw_os_error().is_none() && path.as_os_str().len() >= SUN_PATH_MAX {
        return format!(
            "the path is {} bytes long, a socket path can have at most {}",
            path.as_os_str().len(),
            SUN_PATH_MAX - 1
        );
    }
    let hint = match error.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => " (is supd running?)",
        io::ErrorKind::PermissionDenied => " (is your user allowed to use the socket?)",
        _ => "",
    };
    format!("{}{hint}", describe(error))
}

/// The size of `sockaddr_un.sun_path` on Linux.
const SUN_PATH_MAX: usize = 108;

/// One connection to supd. Requests go one at a time; ids count up from 1 (0 is what the
/// daemon uses when a request is too broken to carry an id).
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    /// Connect to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            path: path.to_path_buf(),
            source,
        };
        let stream = UnixStream::connect(path).map_err(unreachable)?;
        let writer = stream.try_clone().map_err(unreachable)?;
        Ok(Client {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
        })
    }

    /// The socket path this client is connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Send `cmd` and wait for its one reply, however long the daemon takes. An error
    /// reply (`ok: false`) is a successful call; `Err` means the conversation failed.
    /// A `more` reply is an error here: streaming commands go through [`Client::stream`].
    pub fn call(&mut self, cmd: Command) -> Result<Reply, ClientError> {
        let id = self.send(cmd)?;
        let reply = self.receive(id)?;
        if reply.more {
            return Err(self.unexpected(format!(
                "a streamed reply to request {id}, which expects one answer"
            )));
        }
        Ok(reply)
    }

    /// Connect to `path` and [`Client::call`] `cmd`. A read-only command
    /// ([`Command::is_read_only`]) whose connection is cut before its answer (a supd
    /// re-executing itself closes the connections it does not carry over) is sent again
    /// on a new connection, up to three times.
    pub fn call_once(path: &Path, cmd: Command) -> Result<Reply, ClientError> {
        let mut tries = 0;
        loop {
            let outcome = Client::connect(path).and_then(|mut c| c.call(cmd.clone()));
            let cut = matches!(
                outcome,
                Err(ClientError::Closed { .. }
                    | ClientError::Io { .. }
                    | ClientError::Protocol { .. })
            );
            tries += 1;
            if !cut || !cmd.is_read_only() || tries >= 3 {
                return outcome;
            }
        }
    }

    /// Send `cmd` and hand every reply to `on_reply`, the `more: true` ones and then the
    /// terminal one, after which this returns. When `on_reply` returns `false` the stream
    /// is abandoned: the connection is shut down and this client cannot be used again.
    pub fn stream(
        &mut self,
        cmd: Command,
        mut on_reply: impl FnMut(Reply) -> bool,
    ) -> Result<(), ClientError> {
        let id = self.send(cmd)?;
        loop {
            let reply = self.receive(id)?;
            let terminal = !reply.more;
            if !on_reply(reply) {
                if !terminal {
                    // The daemon would keep writing replies nobody reads; closing tells
                    // it to stop, and later calls fail instead of reading stale lines.
                    // A failure here only means the connection is already gone.
                    let _ = self.writer.shutdown(std::net::Shutdown::Both);
                }
                return Ok(());
            }
            if terminal {
                return Ok(());
            }
        }
    }

    fn send(&mut self, cmd: Command) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = proto::encode_request(&Request::new(id, cmd));
        self.writer
            .write_all(&line)
            .and_then(|()| self.writer.flush())
            .map_err(|source| self.io_error(source))?;
        Ok(id)
    }

    /// Read the next reply and check it answers request `id`.
    fn receive(&mut self, id: u64) -> Result<Reply, ClientError> {
        let mut line = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_REPLY_LINE)
            .read_until(b'\n', &mut line)
            .map_err(|source| self.io_error(source))?;
        if !line.ends_with(b"\n") {
            // A clean EOF (0 bytes) and a reply cut off mid-line both mean the daemon went
            // away; only a full buffer without a newline is an over-long line.
            return Err(if read as u64 == MAX_REPLY_LINE {
                ClientError::TooLong {
                    path: self.path.clone(),
                }
            } else {
                ClientError::Closed {
                    path: self.path.clone(),
                }
            });
        }
        let reply = proto::decode_reply(&line).map_err(|source| ClientError::Protocol {
            path: self.path.clone(),
            source,
        })?;
        // id 0 with an error is the daemon rejecting a line it could not attribute (too
        // large, unparsable); it is still the answer to what we just sent.
        if reply.id == id || (reply.id == 0 && !reply.ok) {
            Ok(reply)
        } else {
            Err(self.unexpected(format!(
                "a reply to request {} while waiting for request {id}",
                reply.id
            )))
        }
    }

    fn io_error(&self, source: io::Error) -> ClientError {
        ClientError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn unexpected(&self, problem: String) -> ClientError {
        ClientError::Unexpected {
            path: self.path.clone(),
            problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::proto::ErrorKind;
    use serde_json::json;
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::thread::JoinHandle;

    /// A short, unique directory under /tmp: socket paths must fit in 107 bytes.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = PathBuf::from(format!("/tmp/supc-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        fn sock(&self) -> PathBuf {
            self.0.join("s.sock")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A fake daemon: accepts one connection and, for each request line, writes whatever
    /// `answer` returns (raw bytes, possibly several lines); `None` closes the connection.
    fn fake_daemon(
        path: &Path,
        mut answer: impl FnMut(Request) -> Option<Vec<u8>> + Send + 'static,
    ) -> JoinHandle<()> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            for line in BufReader::new(stream).split(b'\n') {
                let request = proto::decode_request(&line.unwrap()).unwrap();
                match answer(request) {
                    Some(bytes) => writer.write_all(&bytes).unwrap(),
                    None => return,
                }
            }
        })
    }

    #[test]
    fn call_assigns_ids_and_returns_the_reply() {
        let dir = TempDir::new();
        let server = fake_daemon(&dir.sock(), |request| {
            let reply = match request.cmd {
                Command::Status { .. } => {
                    Reply::ok(request.id, proto::data(&json!({"n": request.id})))
                }
                _ => Reply::error(request.id, ErrorKind::UnknownApp, "no app named \"x\""),
            };
            Some(proto::encode_reply(&reply))
        });
        let mut client = Client::connect(&dir.sock()).unwrap();
        let first = client.call(Command::Status { app: None }).unwrap();
        assert_eq!(first, Reply::ok(1, proto::data(&json!({"n": 1}))));
        let second = client.call(Command::Restart { app: "x".into() }).unwrap();
        assert_eq!(
            second,
            Reply::error(2, ErrorKind::UnknownApp, "no app named \"x\"")
        );
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn a_reply_with_another_id_is_an_error() {
        let dir = TempDir::new();
        let server = fake_daemon(&dir.sock(), |request| {
            Some(proto::encode_reply(&Reply::ok(
                request.id + 41,
                proto::data(&json!(null)),
            )))
        });
        let mut client = Client::connect(&dir.sock()).unwrap();
        let err = client.call(Command::Shutdown).unwrap_err();
        assert!(!err.is_unreachable());
        assert_eq!(
            err.to_string(),
            format!(
                "bad reply from supd at {}: a reply to request 42 while waiting for request 1",
                dir.sock().display()
            )
        );
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn an_error_with_id_0_answers_the_request() {
        let dir = TempDir::new();
        let server = fake_daemon(&dir.sock(), |_| {
            Some(proto::encode_reply(&Reply::error(
                0,
                ErrorKind::TooLarge,
                "too long",
            )))
        });
        let mut client = Client::connect(&dir.sock()).unwrap();
        let reply = client.call(Command::Shutdown).unwrap();
        assert_eq!(reply, Reply::error(0, ErrorKind::TooLarge, "too long"));
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn eof_before_the_reply_is_closed() {
        let dir = TempDir::new();
        let server = fake_daemon(&dir.sock(), |_| None);
        let mut client = Client::connect(&dir.sock()).unwrap();
        let err = client.call(Command::Shutdown).unwrap_err();
        assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");
        assert!(!err.is_unreachable());
        assert_eq!(
            err.to_string(),
            format!(
                "supd at {} closed the connection without replying",
                dir.sock().display()
            )
        );
        server.join().unwrap();
    }

    #[test]
    fn a_reply_cut_off_mid_line_is_closed() {
        let dir = TempDir::new();
        let server = fake_daemon(&dir.sock(), |_| Some(br#"{"id":1,"ok":tr"#.to_vec()));
        let mut client = Client::connect(&dir.sock()).unwrap();
        // The fake closes once it reads EOF from us, so half-close our side first.
        let id = client.send(Command::Shutdown).unwrap();
        client.writer.shutdown(std::net::Shutdown::Write).unwrap();
        let err = client.receive(id).unwrap_err();
        assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");
        server.join().unwrap();
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let dir = TempDir::new();
        let server = fake_daemon(&dir.sock(), |_| {
            Some(b"HTTP/1.1 400 Bad Request\n".to_vec())
        });
        let mut client = Client::connect(&dir.sock()).unwrap();
        let err = client.call(Command::Status { app: None }).unwrap_err();
        assert!(matches!(err, ClientError::Protocol { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&format!(
            "bad reply from supd at {}: malformed reply",
            dir.sock().display()
        )));
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn stream_reads_until_the_terminal_reply() {
        let dir = TempDir::new();
        let server = fake_daemon(&dir.sock(), |request| {
            let mut bytes = Vec::new();
            for n in 0..3 {
                bytes.extend(proto::encode_reply(&Reply::more(
                    request.id,
                    proto::data(&json!(n)),
                )));
            }
            bytes.extend(proto::encode_reply(&Reply::ok(
                request.id,
                proto::data(&json!("end")),
            )));
            Some(bytes)
        });
        let mut client = Client::connect(&dir.sock()).unwrap();
        let mut seen = Vec::new();
        client
            .stream(Command::Status { app: None }, |reply| {
                seen.push((reply.more, reply.data.map(|d| d.get().to_string())));
                true
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![
                (true, Some("0".to_string())),
                (true, Some("1".to_string())),
                (true, Some("2".to_string())),
                (false, Some("\"end\"".to_string())),
            ]
        );
        // The connection is in step: the next call gets its own reply.
        let mut count = 0;
        client
            .stream(Command::Status { app: None }, |_| {
                count += 1;
                count < 2
            })
            .unwrap();
        assert_eq!(count, 2);
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn call_refuses_a_streamed_reply() {
        let dir = TempDir::new();
        let server = fake_daemon(&dir.sock(), |request| {
            Some(proto::encode_reply(&Reply::more(
                request.id,
                proto::data(&json!(1)),
            )))
        });
        let mut client = Client::connect(&dir.sock()).unwrap();
        let err = client.call(Command::Status { app: None }).unwrap_err();
        assert!(matches!(err, ClientError::Unexpected { .. }), "{err:?}");
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn a_missing_socket_is_unreachable_and_named() {
        let dir = TempDir::new();
        let err = Client::connect(&dir.sock()).unwrap_err();
        assert!(err.is_unreachable());
        assert_eq!(
            err.to_string(),
            format!(
                "cannot reach supd at {}: No such file or directory (is supd running?)",
                dir.sock().display()
            )
        );
    }

    #[test]
    fn a_stale_socket_is_unreachable() {
        let dir = TempDir::new();
        // Bound, then the listener is dropped: the file stays, nobody listens.
        drop(UnixListener::bind(dir.sock()).unwrap());
        let err = Client::connect(&dir.sock()).unwrap_err();
        assert!(err.is_unreachable());
        assert_eq!(
            err.to_string(),
            format!(
                "cannot reach supd at {}: Connection refused (is supd running?)",
                dir.sock().display()
            )
        );
    }

    #[test]
    fn a_path_too_long_for_a_socket_is_unreachable() {
        let long = PathBuf::from(format!("/tmp/{}/s.sock", "x".repeat(200)));
        let err = Client::connect(&long).unwrap_err();
        assert!(err.is_unreachable());
        assert_eq!(
            err.to_string(),
            format!(
                "cannot reach supd at {}: the path is 212 bytes long, a socket path can have at most 107",
                long.display()
            )
        );
    }
}

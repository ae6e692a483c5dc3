//! The control socket inside supd: binding it safely, accepting connections, reading
//! request lines and forwarding each request to the runtime, which answers through a
//! oneshot channel. Knows nothing of the supervisor state.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::os::unix::net::UnixListener as StdListener;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::sys::stat::{umask, Mode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::proto::{self, Command, ErrorBody, ErrorKind, Reply};

/// A request forwarded to the runtime, with where its replies go.
#[derive(Debug)]
pub struct ControlRequest {
    /// What was asked.
    pub cmd: Command,
    /// The outcome, sent exactly once.
    pub reply: oneshot::Sender<Result<proto::Data, ErrorBody>>,
    /// For streaming commands (`logs`): the data of each non-terminal reply. Closed when
    /// the client hangs up, which tells the sender to stop.
    pub stream: Option<mpsc::Sender<proto::Data>>,
    /// The control connection it came on (none for HTTP): what a re-exec carries over so
    /// the next supd gives the answer.
    pub origin: Option<Origin>,
    /// Who asked, for a request on the control socket; none for one not to be checked
    /// (HTTP, whose endpoint serves only what it serves everyone, or one the supd before
    /// a re-exec let in).
    pub peer: Option<super::access::Peer>,
}

/// Where on the control socket a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The connection's fd, open while its request waits for the answer.
    pub conn: RawFd,
    /// The id the client gave the request.
    pub wire_id: u64,
}

/// The answer a connection waits for.
pub type Outcome = Result<proto::Data, ErrorBody>;

/// Non-terminal replies that may wait for a slow client before the sender waits too.
const STREAM_QUEUE: usize = 64;

/// What an open control connection is doing. A re-exec carries every open connection
/// over, and first lets those with an answer in hand write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Reading its next request, or waiting for one.
    Idle,
    /// Its request is with the runtime, which answers through the oneshot.
    Waiting,
    /// Following a log (`logs -f`): it has no answer to wait for, and a re-exec ends it.
    Following,
    /// Writing a reply.
    Writing,
}

/// Every open control connection, by fd.
static OPEN: Mutex<BTreeMap<RawFd, ConnState>> = Mutex::new(BTreeMap::new());

/// The open control connections and what each is doing.
pub fn connections() -> Vec<(RawFd, ConnState)> {
    let open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
    open.iter().map(|(&fd, &state)| (fd, state)).collect()
}

/// A connection's entry in [`OPEN`], for as long as its task holds the stream.
struct Registered(RawFd);

impl Registered {
    fn new(fd: RawFd, state: ConnState) -> Registered {
        OPEN.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(fd, state);
        Registered(fd)
    }

    fn set(&self, state: ConnState) {
        OPEN.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.0, state);
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        OPEN.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A live supd already listens there.
    #[error("another supd is running (pid {pid}) on {path}")]
    InUse {
        /// The socket path.
        path: PathBuf,
        /// The other daemon's pid, from the socket's peer credentials.
        pid: i32,
    },
    /// Something else failed.
    #[error("cannot listen on {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Bind the control socket at `path`: its directory is created 0750 (0755 as root, so
/// members of group `sup` reach the socket), the socket is created 0660 (umask set
/// around `bind`, so it is never wider, even for an instant) and, as root, given to
/// group `sup` when it exists; a stale socket (nothing listening) is replaced and a live
/// one refused. Who may use it is checked per client too ([`super::access`]).
///
/// Call this before any thread that creates files exists: the umask is process-wide.
pub fn bind(path: &Path) -> Result<StdListener, BindError> {
    let io_err = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(if nix::unistd::geteuid().is_root() {
                0o755
            } else {
                0o750
            })
            .create(dir)
            .map_err(io_err)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(stream) => {
                    let pid = getsockopt(&stream, PeerCredentials)
                        .map(|c| c.pid())
                        .unwrap_or(0);
                    return Err(BindError::InUse {
                        path: path.to_path_buf(),
                        pid,
                    });
                }
                // Nobody listens: a supd that died without cleaning up.
                Err(_) => std::fs::remove_file(path).map_err(io_err)?,
            }
        }
        Ok(_) => {
            return Err(io_err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let old = umask(Mode::from_bits_truncate(0o117));
    let bound = StdListener::bind(path);
    umask(old);
    let listener = bound.map_err(io_err)?;
    listener.set_nonblocking(true).map_err(io_err)?;
    // A system supd's socket is root:sup 0660, so members of group `sup` reach it.
    if nix::unistd::geteuid().is_root() {
        if let Some(gid) = super::access::admin_gid() {
            let gid = nix::unistd::Gid::from_raw(gid);
            nix::unistd::chown(path, None, Some(gid)).map_err(|e| io_err(e.into()))?;
        }
    }
    Ok(listener)
}

/// Accept connections forever (spawned on the current runtime), forwarding requests.
pub fn serve(listener: StdListener, requests: mpsc::Sender<ControlRequest>) -> io::Result<()> {
    let listener = UnixListener::from_std(listener)?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let registered = Registered::new(stream.as_raw_fd(), ConnState::Idle);
                    tokio::spawn(connection(stream, requests.clone(), registered));
                }
                Err(e) => {
                    // EMFILE and the like: keep serving the connections we have, and
                    // do not spin while the condition lasts.
                    tracing::warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

/// A connection an earlier supd accepted and handed over at its re-exec: writes the
/// answer it waits for (if any) when `answer` gives it, then serves it as any other.
pub fn adopt(
    conn: OwnedFd,
    answer: Option<(u64, oneshot::Receiver<Outcome>)>,
    requests: mpsc::Sender<ControlRequest>,
) -> io::Result<()> {
    let stream = std::os::unix::net::UnixStream::from(conn);
    stream.set_nonblocking(true)?;
    let mut stream = UnixStream::from_std(stream)?;
    let state = match answer {
        Some(_) => ConnState::Waiting,
        None => ConnState::Idle,
    };
    let registered = Registered::new(stream.as_raw_fd(), state);
    tokio::spawn(async move {
        if let Some((id, rx)) = answer {
            let reply = match rx.await {
                Ok(Ok(data)) => Reply::ok(id, data),
                Ok(Err(error)) => Reply::error(id, error.kind, error.message),
                Err(_) => Reply::error(id, ErrorKind::ShuttingDown, "supd is shutting down"),
            };
            registered.set(ConnState::Writing);
            if stream
                .write_all(&proto::encode_reply(&reply))
                .await
                .is_err()
            {
                return;
            }
        }
        connection(stream, requests, registered).await;
    });
    Ok(())
}

/// One client: requests are answered in order; a bad line gets an error reply and the
/// connection stays open.
async fn connection(
    stream: UnixStream,
    requests: mpsc::Sender<ControlRequest>,
    registered: Registered,
) {
    let conn = stream.as_raw_fd();
    // A client the kernel cannot name gets the access of nobody.
    let peer = super::access::peer_of(&stream).unwrap_or(super::access::Peer {
        uid: u32::MAX,
        pid: 0,
        groups: Vec::new(),
    });
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        registered.set(ConnState::Idle);
        let reply = match read_line(&mut reader, &mut line).await {
            Ok(LineRead::Eof) | Err(_) => return,
            Ok(LineRead::TooLong) => Reply::error(
                0,
                ErrorKind::TooLarge,
                format!("request line longer than {} bytes", proto::MAX_REQUEST_LINE),
            ),
            Ok(LineRead::Line) => match proto::decode_request(&line) {
                Err(reply) => reply,
                Ok(request) => {
                    let at = Origin {
                        conn,
                        wire_id: request.id,
                    };
                    let peer = Some(peer.clone());
                    let asked = answer(
                        request,
                        at,
                        peer,
                        &requests,
                        (&mut reader, &mut write),
                        &registered,
                    );
                    match asked.await {
                        Some(reply) => reply,
                        None => return,
                    }
                }
            },
        };
        registered.set(ConnState::Writing);
        if write.write_all(&proto::encode_reply(&reply)).await.is_err() {
            return;
        }
    }
}

/// Forward one request and wait for its terminal reply, writing the non-terminal ones of
/// a stream as they come. `None` when the client went away meanwhile.
async fn answer(
    request: proto::Request,
    origin: Origin,
    peer: Option<super::access::Peer>,
    requests: &mpsc::Sender<ControlRequest>,
    (reader, write): (
        &mut BufReader<tokio::net::unix::OwnedReadHalf>,
        &mut tokio::net::unix::OwnedWriteHalf,
    ),
    registered: &Registered,
) -> Option<Reply> {
    let id = request.id;
    let gone = || Reply::error(id, ErrorKind::ShuttingDown, "supd is shutting down");
    let (tx, mut rx) = oneshot::channel();
    let waiting = match request.cmd {
        Command::Logs { follow: true, .. } => ConnState::Following,
        _ => ConnState::Waiting,
    };
    let (stream, mut items) = match request.cmd {
        Command::Logs { .. } => {
            let (tx, rx) = mpsc::channel(STREAM_QUEUE);
            (Some(tx), Some(rx))
        }
        _ => (None, None),
    };
    let forwarded = ControlRequest {
        cmd: request.cmd,
        reply: tx,
        stream,
        origin: Some(origin),
        peer,
    };
    // Waiting from before the send: once the runtime has the request, it knows of it.
    registered.set(waiting);
    if requests.send(forwarded).await.is_err() {
        return Some(gone());
    }
    loop {
        tokio::select! {
            biased;
            Some(data) = next_item(&mut items) => {
                registered.set(ConnState::Writing);
                if write.write_all(&proto::encode_reply(&Reply::more(id, data))).await.is_err() {
                    return None;
                }
                registered.set(waiting);
            }
            outcome = &mut rx => {
                registered.set(ConnState::Writing);
                // The sender queued every item before the terminal reply: write them first.
                while let Some(data) = items.as_mut().and_then(|rx| rx.try_recv().ok()) {
                    if write.write_all(&proto::encode_reply(&Reply::more(id, data))).await.is_err() {
                        return None;
                    }
                }
                return Some(match outcome {
                    Ok(Ok(data)) => Reply::ok(id, data),
                    Ok(Err(error)) => Reply::error(id, error.kind, error.message),
                    Err(_) => gone(),
                });
            }
            // A client that hangs up in the middle of a stream (`supctl logs -f`, Ctrl-C)
            // ends it; anything it sends meanwhile is not a request we can take.
            hangup = reader.fill_buf(), if items.is_some() => {
                if matches!(hangup, Ok([]) | Err(_)) {
                    return None;
                }
                let n = hangup.map(<[u8]>::len).unwrap_or(0);
                reader.consume(n);
            }
        }
    }
}

/// The next streamed item, or never when there is no stream (or it ended).
async fn next_item(items: &mut Option<mpsc::Receiver<proto::Data>>) -> Option<proto::Data> {
    match items {
        Some(rx) => match rx.recv().await {
            Some(item) => Some(item),
            None => {
                *items = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

enum LineRead {
    Line,
    TooLong,
    Eof,
}

/// Read one `\n`-terminated line into `line` (without the newline), refusing to buffer
/// more than [`proto::MAX_REQUEST_LINE`]: the rest of an oversized line is skipped.
async fn read_line<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> io::Result<LineRead> {
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() && !too_long {
                LineRead::Eof
            } else if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
        let (chunk, done, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        if !too_long {
            if line.len() + chunk.len() > proto::MAX_REQUEST_LINE {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        reader.consume(done);
        if found {
            return Ok(if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
    }
}

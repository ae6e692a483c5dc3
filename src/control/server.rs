//! The control socket inside supd: binding it safely, accepting connections, reading
//! request lines and forwarding each request to the runtime, which answers through a
//! oneshot channel. Knows nothing of the supervisor state.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::os::unix::net::UnixListener as StdListener;
use std::path::{Path, PathBuf};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::sys::stat::{umask, Mode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::proto::{self, Command, ErrorBody, ErrorKind, Reply};

/// A request forwarded to the runtime, with where its terminal reply goes.
#[derive(Debug)]
pub struct ControlRequest {
    /// What was asked.
    pub cmd: Command,
    /// The outcome, sent exactly once.
    pub reply: oneshot::Sender<Result<serde_json::Value, ErrorBody>>,
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

/// Bind the control socket at `path`: its directory is created 0750, the socket is
/// created 0660 (umask set around `bind`, so it is never wider, even for an instant),
/// a stale socket (nothing listening) is replaced and a live one refused.
///
/// Call this before any other thread exists: the umask is process-wide.
pub fn bind(path: &Path) -> Result<StdListener, BindError> {
    let io_err = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
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
    Ok(listener)
}

/// Accept connections forever (spawned on the current runtime), forwarding requests.
pub fn serve(listener: StdListener, requests: mpsc::Sender<ControlRequest>) -> io::Result<()> {
    let listener = UnixListener::from_std(listener)?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, requests.clone()));
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

/// One client: requests are answered in order; a bad line gets an error reply and the
/// connection stays open.
async fn connection(stream: UnixStream, requests: mpsc::Sender<ControlRequest>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let reply = match read_line(&mut reader, &mut line).await {
            Ok(LineRead::Eof) | Err(_) => return,
            Ok(LineRead::TooLong) => Reply::error(
                0,
                ErrorKind::TooLarge,
                format!("request line longer than {} bytes", proto::MAX_REQUEST_LINE),
            ),
            Ok(LineRead::Line) => match proto::decode_request(&line) {
                Err(reply) => reply,
                Ok(request) => answer(request, &requests).await,
            },
        };
        if write.write_all(&proto::encode_reply(&reply)).await.is_err() {
            return;
        }
    }
}

async fn answer(request: proto::Request, requests: &mpsc::Sender<ControlRequest>) -> Reply {
    let (tx, rx) = oneshot::channel();
    let gone = || {
        Reply::error(
            request.id,
            ErrorKind::ShuttingDown,
            "supd is shutting down".to_string(),
        )
    };
    if requests
        .send(ControlRequest {
            cmd: request.cmd.clone(),
            reply: tx,
        })
        .await
        .is_err()
    {
        return gone();
    }
    match rx.await {
        Ok(Ok(data)) => Reply::ok(request.id, data),
        Ok(Err(error)) => Reply::error(request.id, error.kind, error.message),
        Err(_) => gone(),
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

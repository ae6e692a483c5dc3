//! The document a supd hands to the binary it re-executes (`supctl reexec`, SIGUSR2):
//! everything the next supd needs to go on supervising the same processes, in a versioned
//! JSON document. The fds it names keep their numbers across the exec.
//!
//! Pure: building, encoding and decoding the document. Taking the fds out of the loop,
//! the memfd and the exec itself are `reexec.rs`'s.

use std::os::fd::RawFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::control::proto::Command;
use crate::core::{Gen, Phase, ProbeKind, ReqId, Slot, State, Time, Timer};

/// What the document says it is, first of all.
pub const FORMAT: &str = "sup-handover";

/// Bumped whenever the document's shape changes: a supd reads only the version it knows,
/// and adopts what it can find of an unknown one's processes from the system instead.
pub const VERSION: u32 = 1;

/// The environment variable that names the fd of the document in the new supd.
pub const ENV: &str = "SUP_HANDOVER_FD";

/// Everything that crosses a re-exec.
#[derive(Debug, Serialize, Deserialize)]
pub struct Document {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// The version of the supd that wrote it.
    pub from: String,
    /// The binary executed (the path supd was started from).
    pub exe: PathBuf,
    /// The profile supd was started with.
    pub profile: Option<String>,
    /// The control socket's path.
    pub socket: PathBuf,
    /// The old supd's clock (time since it first started) at the exec: the new one
    /// goes on from there, so every deadline and uptime in `state` and `timers` holds.
    pub now: Time,
    /// Milliseconds since the Unix epoch at the exec, to report how long it took.
    pub wall_ms: i64,
    /// The supervisor state, running config included (a re-exec is not an `apply`).
    pub state: State,
    /// Leaders not reaped yet.
    pub procs: Vec<Proc>,
    /// Process groups that may still have members: (pgid, slot, generation).
    pub groups: Vec<(i32, Slot, Gen)>,
    /// Groups whose leader was reaped while other members lived.
    pub draining: Vec<i32>,
    /// Every armed timer, as absolute times on the carried clock.
    pub timers: Vec<(Time, Timer)>,
    /// The next request id.
    pub next_req: ReqId,
    /// Part of every notify socket's name.
    pub notify_tag: u64,
    /// The sd_notify sockets.
    pub notify: Vec<Notify>,
    /// The `listen` sockets of each app, by app position.
    pub listeners: Vec<(usize, Vec<RawFd>)>,
    /// The control socket's listening fd.
    pub control: RawFd,
    /// The HTTP endpoint's listening fd.
    pub http: Option<RawFd>,
    /// Every child pipe still open, with the line its stream had begun.
    pub streams: Vec<Stream>,
    /// Control connections waiting for an answer.
    pub connections: Vec<Connection>,
}

/// A leader not reaped yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proc {
    /// Its pid.
    pub pid: i32,
    /// Its slot.
    pub slot: Slot,
    /// Its generation.
    pub gen: Gen,
    /// Why it never reached its program, if it did not.
    pub exec_error: Option<String>,
}

/// One slot's sd_notify socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notify {
    /// The slot.
    pub slot: Slot,
    /// Its `NOTIFY_SOCKET` value.
    pub env: String,
    /// The bound datagram socket.
    pub fd: RawFd,
}

/// One child pipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    /// The app's name.
    pub app: String,
    /// The instance index.
    pub index: u32,
    /// The child's pid.
    pub pid: i32,
    /// stderr (else stdout).
    pub err: bool,
    /// The pipe's read end, unread bytes in it.
    pub fd: RawFd,
    /// Bytes read after its last complete line.
    pub partial: Vec<u8>,
    /// A piece of that line was already written.
    pub continued: bool,
}

/// A control connection to answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// The connected socket.
    pub fd: RawFd,
    /// The request id the client used.
    pub wire_id: u64,
    /// What the connection waits for.
    pub waits: Waits,
}

/// What a carried connection waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Waits {
    /// The answer to `reexec` itself, which the new supd gives.
    Reexec,
    /// The answer to a request the core holds (`restart` waiting for its instances).
    Request(ReqId),
    /// A request read but not handled yet: the new supd handles it.
    Queued(Command),
    /// Nothing: a connection between requests, served on by the new supd.
    Idle,
}

/// Why a document was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Another format or version: from a supd this one does not know.
    #[error("a handover document of {format} version {version}, this supd reads {FORMAT} version {VERSION}")]
    Unknown {
        /// Its format.
        format: String,
        /// Its version.
        version: u32,
    },
    /// Not a document (truncated, damaged).
    #[error("a damaged handover document: {0}")]
    Corrupt(String),
}

/// The document as bytes.
pub fn encode(doc: &Document) -> Vec<u8> {
    // Serializing plain data to a Vec cannot fail: no map has non-string keys.
    serde_json::to_vec(doc).unwrap_or_default()
}

/// The document in `bytes`: its header is read first, so an unknown version is told
/// apart from a damaged document.
pub fn decode(bytes: &[u8]) -> Result<Document, DecodeError> {
    #[derive(Deserialize)]
    struct Header {
        format: String,
        version: u32,
    }
    match serde_json::from_slice::<Header>(bytes) {
        Ok(h) if h.format == FORMAT && h.version == VERSION => {}
        Ok(h) => {
            return Err(DecodeError::Unknown {
                format: h.format,
                version: h.version,
            })
        }
        Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
    }
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Corrupt(e.to_string()))
}

/// Probe timers to arm after a re-exec: a probe running at the exec never reports, and
/// the next one is armed only by its result. Every current instance that a polled probe
/// watches (`ready` until ready, `health` after) and that has no probe timer armed gets
/// one now.
pub fn lost_probes<'a>(
    state: &State,
    armed: impl Iterator<Item = &'a (Time, Timer)>,
    now: Time,
) -> Vec<(Time, Timer)> {
    let armed: std::collections::HashSet<(Slot, Gen)> = armed
        .filter_map(|(_, t)| match *t {
            Timer::Probe { slot, gen, .. } => Some((slot, gen)),
            _ => None,
        })
        .collect();
    state
        .slots()
        .filter_map(|slot| {
            let Phase::Online { gen, ready, .. } = state.instance(slot)?.phase else {
                return None;
            };
            let config = &state.apps[slot.app].config;
            let kind = match (ready, &config.ready, &config.health) {
                (false, Some(r), _) if r.check.is_polled() => ProbeKind::Ready,
                (true, _, Some(_)) => ProbeKind::Health,
                _ => return None,
            };
            (!armed.contains(&(slot, gen))).then_some((now, Timer::Probe { slot, gen, kind }))
        })
        .collect()
}

/// Every fd the document names, for making them survive the exec (and closing them if
/// the document cannot be used).
pub fn fds(doc: &Document) -> Vec<RawFd> {
    let mut fds = vec![doc.control];
    fds.extend(doc.http);
    fds.extend(
        doc.listeners
            .iter()
            .flat_map(|(_, fds)| fds.iter().copied()),
    );
    fds.extend(doc.notify.iter().map(|n| n.fd));
    fds.extend(doc.streams.iter().map(|s| s.fd));
    fds.extend(doc.connections.iter().map(|c| c.fd));
    fds
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample() -> Document {
        let text = "[[app]]\nname = \"web\"\ncmd = [\"sleep\", \"9\"]\ncwd = \"/\"\ninstances = 2\ncron_restart = \"0 3 * * *\"\ncron_tz = \"UTC\"\nready = { log = \"^up \\\\d+\" }\n";
        let path = std::path::Path::new("/etc/sup/ecosystem.toml");
        let config = crate::config::validate::validate(path, text, None, 1, &|_| true).unwrap();
        let slot = Slot { app: 0, index: 1 };
        Document {
            format: FORMAT.into(),
            version: VERSION,
            from: "0.1.0".into(),
            exe: "/usr/bin/supd".into(),
            profile: Some("prod".into()),
            socket: "/run/sup/supd.sock".into(),
            now: Duration::from_millis(12_345),
            wall_ms: 1_795_392_000_000,
            state: State::new(&config, 41, "0.1.0"),
            procs: vec![Proc {
                pid: 57,
                slot,
                gen: 3,
                exec_error: None,
            }],
            groups: vec![(57, slot, 3)],
            draining: vec![60],
            timers: vec![(Duration::from_secs(20), Timer::Kill { slot, gen: 2 })],
            next_req: 9,
            notify_tag: u64::MAX,
            notify: vec![Notify {
                slot,
                env: "@sup/41-ff/web/1".into(),
                fd: 7,
            }],
            listeners: vec![(0, vec![5, 6])],
            control: 3,
            http: Some(4),
            streams: vec![Stream {
                app: "web".into(),
                index: 1,
                pid: 57,
                err: true,
                fd: 8,
                partial: vec![b'h', 0xff, b'i'],
                continued: true,
            }],
            connections: vec![
                Connection {
                    fd: 9,
                    wire_id: 1,
                    waits: Waits::Reexec,
                },
                Connection {
                    fd: 10,
                    wire_id: 7,
                    waits: Waits::Queued(Command::Status { app: None }),
                },
                Connection {
                    fd: 11,
                    wire_id: 0,
                    waits: Waits::Idle,
                },
            ],
        }
    }

    #[test]
    fn a_document_comes_back_as_it_went() {
        let doc = sample();
        let back = decode(&encode(&doc)).unwrap();
        assert_eq!(back.procs, doc.procs);
        assert_eq!(back.groups, doc.groups);
        assert_eq!(back.timers, doc.timers);
        assert_eq!(back.streams, doc.streams);
        assert_eq!(back.connections, doc.connections);
        assert_eq!(back.notify, doc.notify);
        assert_eq!(back.now, doc.now);
        assert_eq!(fds(&back), vec![3, 4, 5, 6, 7, 8, 9, 10, 11]);
        // The running config, parsed types (cron, time zone) included.
        assert_eq!(back.state.apps[0].config, doc.state.apps[0].config);
        assert_eq!(back.state.apps[0].count, 2);
        assert_eq!(back.state.info.supervisor, doc.state.info.supervisor);
    }

    #[test]
    fn an_unknown_version_is_told_apart_from_damage() {
        let mut doc = sample();
        doc.version = VERSION + 1;
        assert_eq!(
            decode(&encode(&doc)).unwrap_err(),
            DecodeError::Unknown {
                format: FORMAT.into(),
                version: VERSION + 1
            }
        );
        let other = br#"{"format":"something","version":1}"#;
        assert!(matches!(decode(other), Err(DecodeError::Unknown { .. })));
    }

    #[test]
    fn a_truncated_document_is_damaged() {
        let bytes = encode(&sample());
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                matches!(decode(&bytes[..cut]), Err(DecodeError::Corrupt(_))),
                "cut at {cut}"
            );
        }
        // A whole header but a body of the wrong shape.
        let wrong = format!(r#"{{"format":"{FORMAT}","version":{VERSION},"state":1}}"#);
        assert!(matches!(
            decode(wrong.as_bytes()),
            Err(DecodeError::Corrupt(_))
        ));
    }
}

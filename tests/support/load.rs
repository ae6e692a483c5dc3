//! Load on a shared port: a free port, the testkit `accept` app, and client threads that
//! count every answer and failure.

use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::kit_app;

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// `web`: `instances` testkit `accept` servers sharing `port`, ready once they say so.
pub fn web(port: u16, instances: u32, extra: &str) -> String {
    kit_app(
        "web",
        &["accept"],
        &format!(
            "instances = {instances}\nlisten = [\"tcp://127.0.0.1:{port}\"]\n\
             ready = {{ log = \"listen-ready\", timeout = \"5s\" }}\n{extra}"
        ),
    )
}

/// Requests against `port` from 4 threads until stopped: each connects, reads the
/// answering pid (2 s bound on each step). Counts answers and failures.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<(u64, Vec<String>)>>,
}

impl Load {
    pub fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..4)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let (mut ok, mut failed) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        match ask(port) {
                            Ok(_) => ok += 1,
                            Err(e) => failed.push(e),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        Load { stop, threads }
    }

    /// Stop; the answered count and every failure.
    pub fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = (0, Vec::new());
        for t in self.threads {
            let (ok, failed) = t.join().expect("load thread");
            all.0 += ok;
            all.1.extend(failed);
        }
        all
    }

    /// Stop the clients and assert every request was answered (and there were some).
    pub fn finish_all_answered(self) {
        let (answered, failed) = self.finish();
        assert!(
            failed.is_empty(),
            "{} of {answered} requests failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        assert!(answered > 0, "no request was answered");
    }
}

pub fn ask(port: u16) -> Result<i64, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| e.to_string())?;
    reply
        .trim()
        .parse()
        .map_err(|_| format!("answer {reply:?}"))
}

//! The optional HTTP endpoint (`[supervisor] http`): `/metrics` in the Prometheus
//! (OpenMetrics) text format, `/healthz` (supd's event loop answers) and `/readyz` (every
//! app that should run is ready), for a Prometheus scrape and Kubernetes probes.
//!
//! Never touches the supervisor state: each request asks the event loop for a status
//! snapshot through the same channel as the control socket, and renders that. HTTP is
//! `hyper`'s, the metrics text `prometheus-client`'s.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use tokio::sync::{mpsc, oneshot};

use crate::control::proto::{Command, Health, Reason, Status};
use crate::control::server::ControlRequest;

/// How long a request waits for the event loop before `/healthz` says it is stuck.
const LOOP_DEADLINE: Duration = Duration::from_secs(5);

/// The OpenMetrics content type, for scrapers that ask for it (Prometheus does).
const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The classic Prometheus text format, for everyone else (`curl`, `promtool`).
const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serve `listener` until supd exits. Needs a tokio runtime.
pub fn serve(
    listener: std::net::TcpListener,
    requests: mpsc::Sender<ControlRequest>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: wait instead of spinning.
                    tracing::warn!("http: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let requests = requests.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let requests = requests.clone();
                    async move { Ok::<_, Infallible>(respond(req, requests).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(())
}

async fn respond<B>(
    req: Request<B>,
    requests: mpsc::Sender<ControlRequest>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => match ask::<Status>(&requests, Command::Status { app: None }).await {
            Some(status) => {
                let openmetrics = req
                    .headers()
                    .get_all(hyper::header::ACCEPT)
                    .iter()
                    .any(|v| {
                        v.to_str()
                            .is_ok_and(|v| v.contains("application/openmetrics-text"))
                    });
                let text = metrics(&status, &SelfUsage::read());
                let (body, kind) = if openmetrics {
                    (text, OPENMETRICS_TYPE)
                } else {
                    (prometheus_text(&text), PROMETHEUS_TYPE)
                };
                let mut response = Response::new(Full::new(Bytes::from(body)));
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(kind),
                );
                response
            }
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "supd did not answer\n".into(),
            ),
        },
        "/healthz" => match ask::<Health>(&requests, Command::Health).await {
            Some(_) => text(StatusCode::OK, "ok\n".into()),
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "supd did not answer\n".into(),
            ),
        },
        "/readyz" => match ask::<Health>(&requests, Command::Health).await {
            Some(h) if h.healthy => text(StatusCode::OK, "ready\n".into()),
            Some(h) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                h.problems.iter().map(|p| format!("{p}\n")).collect(),
            ),
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "supd did not answer\n".into(),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// One request to the event loop; `None` if it does not answer in time.
async fn ask<T: serde::de::DeserializeOwned>(
    requests: &mpsc::Sender<ControlRequest>,
    cmd: Command,
) -> Option<T> {
    let (reply, rx) = oneshot::channel();
    let request = ControlRequest {
        cmd,
        reply,
        stream: None,
        origin: None,
        peer: None,
    };
    tokio::time::timeout(LOOP_DEADLINE, async {
        requests.send(request).await.ok()?;
        let data = rx.await.ok()?.ok()?;
        serde_json::from_str(data.get()).ok()
    })
    .await
    .ok()
    .flatten()
}

/// supd's own memory and CPU time, from `/proc/self/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SelfUsage {
    /// Resident memory in bytes.
    pub rss_bytes: u64,
    /// User plus system CPU time in seconds.
    pub cpu_seconds: f64,
}

impl SelfUsage {
    fn read() -> SelfUsage {
        let stat = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|t| crate::monitor::parse_stat(&t));
        match stat {
            Some(s) => SelfUsage {
                rss_bytes: s.rss_pages * crate::monitor::page_size(),
                cpu_seconds: s.cpu_ticks as f64 / crate::monitor::clock_ticks().max(1) as f64,
            },
            None => SelfUsage::default(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    app: String,
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    app: String,
    instance: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

/// The metrics text for `status` and supd's own usage. Pure, so it is tested directly.
pub fn metrics(status: &Status, me: &SelfUsage) -> String {
    let mut registry = Registry::with_prefix("sup");
    let up = Family::<InstanceLabels, Gauge>::default();
    let ready = Family::<InstanceLabels, Gauge>::default();
    let restarts = Family::<ReasonLabels, Counter>::default();
    let memory = Family::<InstanceLabels, Gauge>::default();
    let cpu = Family::<InstanceLabels, FloatCounter>::default();
    let uptime = Family::<InstanceLabels, FloatGauge>::default();
    let lines = Family::<AppLabels, Counter>::default();
    let dropped = Family::<AppLabels, Counter>::default();
    for app in &status.apps {
        let app_labels = AppLabels {
            app: app.name.clone(),
        };
        lines.get_or_create(&app_labels).inc_by(app.log_lines);
        dropped.get_or_create(&app_labels).inc_by(app.log_dropped);
        for row in &app.instances {
            let labels = InstanceLabels {
                app: app.name.clone(),
                instance: row.index.to_string(),
            };
            up.get_or_create(&labels).set(i64::from(row.pid.is_some()));
            ready.get_or_create(&labels).set(i64::from(row.ready));
            // Every reason, zeros included, so `rate()` sees the first restart.
            for reason in Reason::ALL {
                let n = row.restarts_by_reason.get(&reason).copied().unwrap_or(0);
                let labels = ReasonLabels {
                    app: app.name.clone(),
                    instance: row.index.to_string(),
                    reason: reason.as_str().to_string(),
                };
                restarts.get_or_create(&labels).inc_by(u64::from(n));
            }
            if let Some(bytes) = row.memory_bytes {
                memory
                    .get_or_create(&labels)
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
            if let Some(seconds) = row.cpu_seconds {
                cpu.get_or_create(&labels).inc_by(seconds);
            }
            if let Some(ms) = row.uptime_ms {
                uptime.get_or_create(&labels).set(ms as f64 / 1000.0);
            }
        }
    }
    registry.register("instance_up", "1 while the instance has a process", up);
    registry.register(
        "instance_ready",
        "1 while the instance is online and ready",
        ready,
    );
    registry.register(
        "instance_restarts",
        "Restarts since supd started, by reason",
        restarts,
    );
    registry.register(
        "instance_memory_bytes",
        "Resident memory of the instance's whole process tree",
        memory,
    );
    registry.register(
        "instance_cpu_seconds",
        "CPU time of the instance's live process tree",
        cpu,
    );
    registry.register(
        "instance_uptime_seconds",
        "Time since the instance's process was spawned",
        uptime,
    );
    registry.register(
        "app_log_lines",
        "Log lines taken from the app's output",
        lines,
    );
    registry.register(
        "app_log_lines_dropped",
        "Log lines lost to write errors",
        dropped,
    );
    let supd_memory = Gauge::<i64>::default();
    supd_memory.set(i64::try_from(me.rss_bytes).unwrap_or(i64::MAX));
    registry.register("supd_memory_bytes", "Resident memory of supd", supd_memory);
    let supd_cpu = FloatCounter::default();
    supd_cpu.inc_by(me.cpu_seconds);
    registry.register("supd_cpu_seconds", "CPU time used by supd", supd_cpu);
    let supd_uptime = FloatGauge::default();
    supd_uptime.set(status.supervisor.uptime_ms as f64 / 1000.0);
    registry.register(
        "supd_uptime_seconds",
        "Time since supd started",
        supd_uptime,
    );
    let build = Family::<BuildLabels, Gauge>::default();
    build
        .get_or_create(&BuildLabels {
            version: status.supervisor.version.clone(),
        })
        .set(1);
    registry.register("build_info", "supd's version", build);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// OpenMetrics text → the classic Prometheus text format. The two differ only in how a
/// counter's family is named (`x` with samples `x_total`, against `x_total` throughout)
/// and in the closing `# EOF`; `prometheus-client` writes only the former.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE ", "# UNIT "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (&p[..7], rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{prefix}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::control::proto::{AppStatus, InstanceStatus, StateName, SupervisorInfo};

    fn status() -> Status {
        let row = |index, pid: Option<i32>, ready| {
            let state = if pid.is_some() {
                StateName::Online
            } else {
                StateName::Backoff
            };
            InstanceStatus {
                pid,
                ready,
                restarts: 3,
                last_reason: Some(Reason::Memory),
                uptime_ms: pid.map(|_| 1500),
                memory_bytes: pid.map(|_| 52_142_080),
                cpu_percent: Some(1.5),
                cpu_seconds: pid.map(|_| 0.25),
                restarts_by_reason: [(Reason::Memory, 2), (Reason::Crash, 1)].into(),
                ..InstanceStatus::blank(index, state)
            }
        };
        Status {
            supervisor: SupervisorInfo {
                pid: 41,
                version: "0.1.0".into(),
                uptime_ms: 5012,
                config: "/etc/sup/ecosystem.toml".into(),
            },
            apps: vec![AppStatus {
                name: "backend".into(),
                instances: vec![row(0, Some(57), true), row(1, None, false)],
                log_dropped: 4,
                log_lines: 1000,
                next_cron: None,
            }],
        }
    }

    /// Every sample line parses as `name{labels} value`, each family has HELP and TYPE
    /// before its samples, and the text ends with `# EOF`.
    #[test]
    fn the_metrics_text_is_well_formed_and_complete() {
        let me = SelfUsage {
            rss_bytes: 4 << 20,
            cpu_seconds: 0.5,
        };
        let text = metrics(&status(), &me);
        assert!(text.ends_with("# EOF\n"), "{text}");
        let mut typed = std::collections::HashMap::new();
        let mut samples = std::collections::HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(typed.insert(name.to_string(), kind.to_string()).is_none());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            let name = series.split('{').next().unwrap();
            let family = typed
                .keys()
                .filter(|f| name.starts_with(f.as_str()))
                .max_by_key(|f| f.len())
                .unwrap_or_else(|| panic!("no TYPE before {line}"));
            if typed[family] == "counter" {
                assert_eq!(name, format!("{family}_total"), "{line}");
            }
            if let Some(labels) = series.strip_prefix(name) {
                if !labels.is_empty() {
                    assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                    for pair in labels[1..labels.len() - 1].split(',') {
                        let (k, v) = pair.split_once('=').unwrap();
                        assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                        assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
                    }
                }
            }
            samples.insert(series.to_string(), value);
        }
        let want = [
            (r#"sup_instance_up{app="backend",instance="0"}"#, 1.0),
            (r#"sup_instance_up{app="backend",instance="1"}"#, 0.0),
            (r#"sup_instance_ready{app="backend",instance="0"}"#, 1.0),
            (
                r#"sup_instance_restarts_total{app="backend",instance="0",reason="memory"}"#,
                2.0,
            ),
            (
                r#"sup_instance_restarts_total{app="backend",instance="0",reason="crash"}"#,
                1.0,
            ),
            (
                r#"sup_instance_memory_bytes{app="backend",instance="0"}"#,
                52_142_080.0,
            ),
            (
                r#"sup_instance_cpu_seconds_total{app="backend",instance="0"}"#,
                0.25,
            ),
            (
                r#"sup_instance_uptime_seconds{app="backend",instance="0"}"#,
                1.5,
            ),
            (
                r#"sup_instance_restarts_total{app="backend",instance="0",reason="probe"}"#,
                0.0,
            ),
            (r#"sup_app_log_lines_total{app="backend"}"#, 1000.0),
            (r#"sup_app_log_lines_dropped_total{app="backend"}"#, 4.0),
            ("sup_supd_memory_bytes", 4194304.0),
            ("sup_supd_cpu_seconds_total", 0.5),
            ("sup_supd_uptime_seconds", 5.012),
            (r#"sup_build_info{version="0.1.0"}"#, 1.0),
        ];
        for (series, value) in want {
            assert_eq!(samples.get(series), Some(&value), "{series} in\n{text}");
        }
        assert!(
            !samples.contains_key(r#"sup_instance_memory_bytes{app="backend",instance="1"}"#),
            "no process, no memory sample"
        );
    }

    #[test]
    fn the_prometheus_text_names_counter_families_with_total() {
        let text = metrics(&status(), &SelfUsage::default());
        let classic = prometheus_text(&text);
        assert!(!classic.contains("# EOF"));
        assert!(classic.contains("# TYPE sup_app_log_lines_total counter\n"));
        assert!(classic.contains("# HELP sup_app_log_lines_total Log lines taken"));
        assert!(classic.contains("# TYPE sup_instance_up gauge\n"));
        let samples = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples(&text), samples(&classic), "samples unchanged");
    }
}

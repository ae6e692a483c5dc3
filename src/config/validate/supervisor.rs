//! `[supervisor]`: the settings of supd itself.

use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeValue;

use super::{Value, Walker};
use crate::config::raw::SUPERVISOR_KEYS;
use crate::config::Supervisor;

/// `shutdown_timeout` when the file sets none.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// `log_dir` when the file sets none and supd runs as root.
pub const ROOT_LOG_DIR: &str = "/var/log/sup";

/// The longest path a Unix socket address holds (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

impl Walker<'_> {
    /// A list of group names that exist on this machine.
    fn groups(&mut self, value: &Value<'_>, key: &str, field: &str) -> Vec<String> {
        let expected = "an array of group names: [\"adm\"]";
        let DeValue::Array(items) = value.get_ref() else {
            self.sink.wrong_type(value, key, field, expected);
            return Vec::new();
        };
        let mut names = Vec::new();
        for item in items.iter() {
            let Some(name) = self.string(item, key, field, expected) else {
                continue;
            };
            match nix::unistd::Group::from_name(name) {
                Ok(Some(_)) => names.push(name.to_string()),
                _ => self.sink.error(
                    item.span(),
                    Some(key),
                    format!("`{field}`: there is no group `{name}` on this machine"),
                    None,
                ),
            }
        }
        names
    }

    pub(super) fn supervisor(&mut self, value: Option<&Value<'_>>, root: bool) -> Supervisor {
        let mut s = Supervisor {
            socket: None,
            log_dir: if root {
                PathBuf::from(ROOT_LOG_DIR)
            } else {
                self.dir.join("logs")
            },
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            http: None,
            readers: Vec::new(),
        };
        let Some(value) = value else { return s };
        let DeValue::Table(table) = value.get_ref() else {
            self.sink
                .wrong_type(value, "supervisor", "supervisor", "a table: [supervisor]");
            return s;
        };
        for (k, v) in table.iter() {
            let field = k.get_ref().as_ref();
            let key = format!("supervisor.{field}");
            match field {
                "socket" => {
                    if let Some(p) = self.path(v, &key, field) {
                        let len = p.as_os_str().len();
                        if len > MAX_SOCKET_PATH {
                            self.sink.error(
                                v.span(),
                                Some(&key),
                                format!(
                                    "`socket` path `{}` is too long for a Unix socket \
                                     ({len} bytes, at most {MAX_SOCKET_PATH})",
                                    p.display()
                                ),
                                None,
                            );
                        } else {
                            s.socket = Some(p);
                        }
                    }
                }
                "log_dir" => {
                    if let Some(p) = self.path(v, &key, field) {
                        s.log_dir = p;
                    }
                }
                "shutdown_timeout" => {
                    if let Some(d) = self.duration(v, &key, field) {
                        s.shutdown_timeout = d;
                    }
                }
                "http" => s.http = self.http_listen(v, &key),
                "readers" => s.readers = self.groups(v, &key, field),
                _ => self.sink.unknown_key(k, &key, SUPERVISOR_KEYS),
            }
        }
        s
    }
}

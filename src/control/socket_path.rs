//! Where the control socket lives: the one resolution rule of DESIGN §6, shared by `supd`
//! (which binds there) and `supctl` (which connects there), so the two cannot disagree.
//!
//! Order: `--socket`, then `$SUP_SOCKET`, then `[supervisor] socket` from the config,
//! then a default chosen by uid. [`resolve_from`] is the pure rule; [`resolve`] feeds it
//! the process's environment. Nothing here creates, binds or checks the path.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The socket of a supd run by root.
pub const ROOT_DEFAULT: &str = "/run/sup/supd.sock";

/// The socket path for this process: `flag` (`--socket`), else `$SUP_SOCKET`, else
/// `config_socket` (`[supervisor] socket`, already resolved against the config file's
/// directory), else the default for the effective uid (see [`resolve_from`]).
pub fn resolve(flag: Option<&Path>, config_socket: Option<&Path>) -> PathBuf {
    let sup_socket = std::env::var_os("SUP_SOCKET");
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR");
    resolve_from(
        flag,
        sup_socket.as_deref(),
        config_socket,
        runtime_dir.as_deref(),
        nix::unistd::geteuid().as_raw(),
    )
}

/// supctl's socket: [`resolve`], except that a user with no supd of their own (nothing
/// at their default path) reaches the system supd at [`ROOT_DEFAULT`] when one is there,
/// so a member of group `sup` runs plain `supctl status` on a server.
pub fn resolve_for_client(flag: Option<&Path>, config_socket: Option<&Path>) -> PathBuf {
    let path = resolve(flag, config_socket);
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR");
    let uid = nix::unistd::geteuid().as_raw();
    let default = resolve_from(None, None, None, runtime_dir.as_deref(), uid);
    let is_default = uid != 0 && path == default;
    client_choice(path, is_default, &|p| p.exists())
}

/// The rule behind [`resolve_for_client`] (pure): `path`, unless it is the user's
/// default (`is_default`), nothing is there, and a system supd's socket is.
pub fn client_choice(path: PathBuf, is_default: bool, exists: &dyn Fn(&Path) -> bool) -> PathBuf {
    let system = Path::new(ROOT_DEFAULT);
    if is_default && !exists(&path) && exists(system) {
        system.to_path_buf()
    } else {
        path
    }
}

/// The pure rule behind [`resolve`], with the environment passed in.
///
/// Defaults: root (`uid` 0) always gets [`ROOT_DEFAULT`], so `sudo supctl` finds a supd
/// started by systemd whatever environment sudo kept. Others get
/// `$XDG_RUNTIME_DIR/sup/supd.sock`, or `/tmp/sup-<uid>/supd.sock` without one.
/// Empty variables count as unset, and a relative `$XDG_RUNTIME_DIR` is ignored, as the
/// XDG Base Directory spec asks.
pub fn resolve_from(
    flag: Option<&Path>,
    sup_socket: Option<&OsStr>,
    config_socket: Option<&Path>,
    xdg_runtime_dir: Option<&OsStr>,
    uid: u32,
) -> PathBuf {
    if let Some(flag) = flag.filter(|p| !p.as_os_str().is_empty()) {
        return flag.to_path_buf();
    }
    if let Some(env) = sup_socket.filter(|s| !s.is_empty()) {
        return PathBuf::from(env);
    }
    if let Some(config) = config_socket.filter(|p| !p.as_os_str().is_empty()) {
        return config.to_path_buf();
    }
    if uid == 0 {
        return PathBuf::from(ROOT_DEFAULT);
    }
    match xdg_runtime_dir.map(Path::new).filter(|d| d.is_absolute()) {
        Some(dir) => dir.join("sup").join("supd.sock"),
        None => PathBuf::from(format!("/tmp/sup-{uid}/supd.sock")),
    }
}

/// `[supervisor] socket` of the config file at `path`, read lightly: only that key, with
/// no validation of the rest. `None` when the file is missing, unreadable, not TOML, or
/// sets no socket — supctl must still work next to a file supd would reject. A relative
/// socket path is resolved against the file's directory, as supd resolves it.
pub fn socket_from_config_file(path: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(path).ok()?;
    let socket = socket_from_config_text(&text)?;
    if socket.is_absolute() {
        return Some(socket);
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    Some(dir.join(socket))
}

fn socket_from_config_text(text: &str) -> Option<PathBuf> {
    let socket = match text.parse::<toml::Table>() {
        Ok(table) => table
            .get("supervisor")?
            .get("socket")?
            .as_str()?
            .to_string(),
        // A file being edited may not parse; `supctl apply` must still reach supd to be
        // told what is wrong with it. A plain `socket = "..."` line is enough.
        Err(_) => socket_line(text)?,
    };
    (!socket.is_empty()).then(|| PathBuf::from(socket))
}

/// `socket = "PATH"` in the `[supervisor]` table of a file that is not valid TOML.
fn socket_line(text: &str) -> Option<String> {
    let mut section = "";
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section != "[supervisor]" {
            continue;
        }
        let Some(value) = line.strip_prefix("socket").map(str::trim_start) else {
            continue;
        };
        let value = value.strip_prefix('=')?.trim_start().strip_prefix('"')?;
        let end = value.find('"')?;
        return Some(value[..end].to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_user_without_a_supd_of_their_own_reaches_the_system_one() {
        let mine = PathBuf::from("/tmp/sup-1000/supd.sock");
        let system = |p: &Path| p == Path::new(ROOT_DEFAULT);
        assert_eq!(
            client_choice(mine.clone(), true, &system),
            Path::new(ROOT_DEFAULT)
        );
        // Their own supd runs: theirs.
        assert_eq!(client_choice(mine.clone(), true, &|_| true), mine);
        // A path they chose (flag, SUP_SOCKET, config) is kept even where nothing is.
        assert_eq!(client_choice(mine.clone(), false, &system), mine);
        // No system supd either: their default, so the error names it.
        assert_eq!(client_choice(mine.clone(), true, &|_| false), mine);
    }

    use super::*;

    #[test]
    fn the_socket_of_a_file_that_does_not_parse_is_still_found() {
        let broken = "[supervisor]\nsocket = \"run/s.sock\" # here\n[[app]\nname = 1\n";
        assert_eq!(
            socket_from_config_text(broken),
            Some(PathBuf::from("run/s.sock"))
        );
        let elsewhere = "[other]\nsocket = \"x\"\n[[app]\n";
        assert_eq!(socket_from_config_text(elsewhere), None);
    }

    /// flag, $SUP_SOCKET, config socket, $XDG_RUNTIME_DIR, uid → expected path.
    type Case<'a> = (
        Option<&'a Path>,
        Option<&'a OsStr>,
        Option<&'a Path>,
        Option<&'a OsStr>,
        u32,
        &'a str,
    );

    #[test]
    fn resolution_table() {
        let flag = Some(Path::new("/f.sock"));
        let env = Some(OsStr::new("/e.sock"));
        let config = Some(Path::new("/c.sock"));
        let xdg = Some(OsStr::new("/run/user/1000"));
        let empty = Some(OsStr::new(""));
        let cases: &[Case] = &[
            (flag, env, config, xdg, 1000, "/f.sock"),
            (flag, env, config, xdg, 0, "/f.sock"),
            (None, env, config, xdg, 1000, "/e.sock"),
            (None, env, config, xdg, 0, "/e.sock"),
            (None, None, config, xdg, 1000, "/c.sock"),
            (None, None, config, None, 0, "/c.sock"),
            (None, None, None, xdg, 1000, "/run/user/1000/sup/supd.sock"),
            (None, None, None, None, 1000, "/tmp/sup-1000/supd.sock"),
            (None, None, None, None, 0, "/run/sup/supd.sock"),
            // Root ignores XDG_RUNTIME_DIR: sudo may or may not keep it.
            (None, None, None, xdg, 0, "/run/sup/supd.sock"),
            // Empty means unset.
            (
                Some(Path::new("")),
                empty,
                None,
                empty,
                1000,
                "/tmp/sup-1000/supd.sock",
            ),
            (None, empty, config, xdg, 1000, "/c.sock"),
            // A relative XDG_RUNTIME_DIR is invalid per the spec.
            (
                None,
                None,
                None,
                Some(OsStr::new("run/user")),
                1000,
                "/tmp/sup-1000/supd.sock",
            ),
            // Relative paths given explicitly are the caller's choice.
            (Some(Path::new("s.sock")), None, None, None, 1000, "s.sock"),
            (None, Some(OsStr::new("e.sock")), None, None, 1000, "e.sock"),
        ];
        for &(flag, env, config, xdg, uid, want) in cases {
            assert_eq!(
                resolve_from(flag, env, config, xdg, uid),
                PathBuf::from(want),
                "{flag:?} {env:?} {config:?} {xdg:?} {uid}"
            );
        }
    }

    #[test]
    fn resolve_honours_the_flag_whatever_the_environment() {
        let flag = Path::new("/tmp/x/flag.sock");
        assert_eq!(resolve(Some(flag), None), flag);
    }

    #[test]
    fn config_text() {
        let cases = [
            (
                "[supervisor]\nsocket = \"/s/supd.sock\"\n",
                Some("/s/supd.sock"),
            ),
            (
                "[supervisor]\nsocket = \"rel/supd.sock\"\n",
                Some("rel/supd.sock"),
            ),
            ("[supervisor]\nsocket = \"\"\n", None),
            ("[supervisor]\nlog_dir = \"/l\"\n", None),
            ("[[app]]\nname = \"a\"\ncmd = [\"x\"]\n", None),
            ("supervisor = 3\n", None),
            ("[supervisor]\nsocket = 3\n", None),
            ("[supervisor\nsocket = \"/s\"", None),
            // Keys supd would reject do not stop supctl from finding the socket.
            (
                "[supervisor]\nsocket = \"/s\"\nbogus = 1\n[[app]]\nnope = true\n",
                Some("/s"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                socket_from_config_text(text),
                want.map(PathBuf::from),
                "{text}"
            );
        }
    }

    #[test]
    fn config_file_relative_socket_resolves_against_its_directory() {
        let dir = std::env::temp_dir().join(format!("sup-socket-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ecosystem.toml");

        std::fs::write(&file, "[supervisor]\nsocket = \"run/supd.sock\"\n").unwrap();
        assert_eq!(
            socket_from_config_file(&file),
            Some(dir.join("run/supd.sock"))
        );
        std::fs::write(&file, "[supervisor]\nsocket = \"/abs/supd.sock\"\n").unwrap();
        assert_eq!(
            socket_from_config_file(&file),
            Some(PathBuf::from("/abs/supd.sock"))
        );
        std::fs::write(&file, "this is = = not toml").unwrap();
        assert_eq!(socket_from_config_file(&file), None);
        assert_eq!(socket_from_config_file(&dir.join("missing.toml")), None);

        std::fs::remove_dir_all(&dir).unwrap();
    }
}

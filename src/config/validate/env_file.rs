//! `env_file`: each file read through [`Files::read`], parsed as dotenv text
//! ([`crate::config::dotenv`]) and merged, a later file winning; validation puts the
//! result under the app's `env`.
//!
//! A file that cannot be read is reported at the `env_file` value that names it; a bad
//! line at the env file's own line and column.

use std::path::PathBuf;

use super::keys::{Env, PathAt};
use super::{Files, Walker};
use crate::config::dotenv;
use crate::config::error::{self, ConfigError};

impl Walker<'_> {
    /// The paths of `files` and the variables they hold, merged in order. Errors are
    /// recorded; a file with errors adds no variable.
    pub(super) fn read_env_files(
        &mut self,
        files: Vec<PathAt>,
        fs: &Files<'_>,
    ) -> (Vec<PathBuf>, Env) {
        let mut env = Env::new();
        let mut paths = Vec::with_capacity(files.len());
        for file in files {
            let bytes = match (fs.read)(&file.path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    self.sink.error(
                        file.span,
                        Some(&file.key),
                        format!("cannot read env file `{}`: {e}", file.path.display()),
                        None,
                    );
                    paths.push(file.path);
                    continue;
                }
            };
            match error::decode(&file.path, &bytes) {
                Err(e) => self.sink.error_elsewhere(e),
                Ok(text) => match dotenv::parse(text) {
                    Ok(vars) => env.extend(vars),
                    Err(errors) => {
                        for e in errors {
                            self.sink.error_elsewhere(ConfigError {
                                file: file.path.clone(),
                                line: e.line,
                                col: e.col,
                                key: None,
                                message: e.message,
                                expected: e.expected.map(String::from),
                            });
                        }
                    }
                },
            }
            paths.push(file.path);
        }
        (paths, env)
    }
}

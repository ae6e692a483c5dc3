//! Config errors (to be written).
use std::path::Path;
/// One error.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError;
impl ConfigError {
    /// An unreadable file.
    pub fn io(_p: &Path, _e: &std::io::Error) -> Self { ConfigError }
}
/// All errors.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);
impl ConfigErrors {
    /// One error.
    pub fn single(e: ConfigError) -> Self { ConfigErrors(vec![e]) }
}

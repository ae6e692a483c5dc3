//! Validation (to be written).
use super::{Config, ConfigErrors};
use std::path::Path;
/// Validate.
pub fn validate(_path: &Path, _text: &str, _profile: Option<&str>, _cpus: u32, _is_dir: &dyn Fn(&Path) -> bool) -> Result<Config, ConfigErrors> { todo!() }

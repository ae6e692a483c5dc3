//! (to be written)
/// placeholder
pub fn signal_name(s: i32) -> Option<&'static str> {
    match s {
        9 => Some("SIGKILL"),
        15 => Some("SIGTERM"),
        _ => None,
    }
}

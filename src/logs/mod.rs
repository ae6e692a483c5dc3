//! Logs (to be written).

//! Processes (to be written).

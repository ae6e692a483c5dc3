//! The event loop (to be written).

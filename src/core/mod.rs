//! The pure lifecycle (to be written).

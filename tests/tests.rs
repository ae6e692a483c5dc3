//! Integration tests (to be written).

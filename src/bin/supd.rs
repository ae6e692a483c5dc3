//! supd (to be written).
fn main() {}

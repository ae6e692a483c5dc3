//! supctl (to be written).
fn main() {}

//! Placeholder: the device simulator lands in the next commit.
fn main() {}

//! dialtone-voice.
fn main() {}

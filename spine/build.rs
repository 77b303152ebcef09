//! `sqlx::migrate!` embeds `migrations/` at compile time; without this a new
//! migration file would not rebuild the spine, and every binary would take
//! a database that has it for a newer release's.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}

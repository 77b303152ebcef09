//! `sqlx::migrate!` embeds `migrations/` at compile time; without this a new
//! migration file would not rebuild the CLI, and `dialtone migrate` would
//! refuse a database that has it.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}

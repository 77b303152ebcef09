//! Links Debian's PocketSphinx (`libpocketsphinx-dev`, which brings
//! `libsphinxbase-dev`). `cargo xtask` installs it when it is missing; this
//! says so plainly instead of leaving a linker error.

use std::path::Path;

const LIBRARY_DIRS: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib",
];

fn main() {
    println!("cargo:rerun-if-env-changed=POCKETSPHINX_LIB_DIR");
    let dirs: Vec<String> = std::env::var("POCKETSPHINX_LIB_DIR")
        .map(|dir| vec![dir])
        .unwrap_or_else(|_| LIBRARY_DIRS.iter().map(|d| (*d).to_owned()).collect());
    let found = dirs
        .iter()
        .find(|dir| Path::new(dir).join("libpocketsphinx.so").exists());
    match found {
        Some(dir) => println!("cargo:rustc-link-search=native={dir}"),
        None => println!(
            "cargo:warning=libpocketsphinx.so not found in {dirs:?}: install Debian's \
             libpocketsphinx-dev and pocketsphinx-en-us (`cargo xtask test` and `cargo xtask demo` \
             do it when run as root), or set POCKETSPHINX_LIB_DIR"
        ),
    }
    println!("cargo:rustc-link-lib=dylib=pocketsphinx");
    println!("cargo:rustc-link-lib=dylib=sphinxbase");
}

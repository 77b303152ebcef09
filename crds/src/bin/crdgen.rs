//! Writes the CRD YAML into the Helm chart, or with `--check` fails when the
//! committed YAML differs from what the types generate.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.iter().any(|a| a == "--check");
    let dir = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(dialtone_crds::generate::default_dir);
    let result = if check {
        dialtone_crds::generate::check(&dir)
            .map(|()| format!("CRDs in {} are up to date", dir.display()))
    } else {
        dialtone_crds::generate::write(&dir).map(|n| format!("wrote {n} CRDs to {}", dir.display()))
    };
    match result {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("crdgen: {error}");
            ExitCode::FAILURE
        }
    }
}

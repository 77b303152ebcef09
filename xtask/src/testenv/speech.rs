//! The builtin speech providers' parts from Debian's packages: espeak-ng
//! (text to speech) and PocketSphinx with its US English model (speech to
//! text).

use anyhow::Result;

use super::debian::{self, Package};

const PACKAGES: [Package; 3] = [
    Package {
        name: "espeak-ng",
        probe: "/usr/bin/espeak-ng",
    },
    Package {
        name: "libpocketsphinx-dev",
        probe: "/usr/include/pocketsphinx/pocketsphinx.h",
    },
    Package {
        name: "pocketsphinx-en-us",
        probe: "/usr/share/pocketsphinx/model/en-us/en-us/mdef",
    },
];

/// Makes sure espeak-ng, PocketSphinx and its model are installed.
pub fn ensure_installed() -> Result<()> {
    debian::ensure(&PACKAGES, "builtin speech")
}

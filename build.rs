//! Links libjpeg-turbo's TurboJPEG API when the system has it (Debian:
//! `libturbojpeg0-dev`), enabling the DCT-domain scaled JPEG decode. Without it
//! the crate still builds and falls back to jpeg-decoder's scaled decode.
//! Set LOOKALIKE_NO_TURBOJPEG=1 to force the fallback.

use std::process::Command;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(has_turbojpeg)");
    println!("cargo:rerun-if-env-changed=LOOKALIKE_NO_TURBOJPEG");
    if std::env::var_os("LOOKALIKE_NO_TURBOJPEG").is_some() {
        return;
    }
    let found = Command::new("pkg-config")
        .args(["--libs", "libturbojpeg"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if let Some(libs) = found {
        for tok in libs.split_whitespace() {
            if let Some(dir) = tok.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={dir}");
            }
        }
        println!("cargo:rustc-link-lib=turbojpeg");
        println!("cargo:rustc-cfg=has_turbojpeg");
    } else {
        println!("cargo:warning=libturbojpeg not found (apt-get install libturbojpeg0-dev): JPEG fast path uses jpeg-decoder, about 40% slower");
    }
}

//! Links libgcc's unwinder (`libgcc_eh.a`, hidden symbols) into the library
//! instead of loading `libgcc_s.so.1`: std's panic machinery needs an
//! unwinder, and a dynamic one costs every process under `LD_PRELOAD` about
//! 100 KiB of resident memory (its pages, relocations and constructor).
//! See "The library's own memory" in `crates/malloc-shim/README.md`.
fn main() {
    println!("cargo:rustc-link-lib=static=gcc_eh");
}

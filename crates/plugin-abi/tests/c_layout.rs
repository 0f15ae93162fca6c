//! The Rust types of `plugin_abi::types` have the layout of
//! `include/allocator.h`: a C program compiled against the header prints its
//! sizes, offsets and constants, and they must equal Rust's.

use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

use plugin_abi::*;

#[test]
fn header_and_rust_types_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = out_dir.join("layout.c");
    let exe = out_dir.join("layout");
    std::fs::write(
        &src,
        r#"
#include <stdio.h>
#include <stddef.h>
#include "allocator.h"
#define F(T, f) printf(#T "." #f " %zu\n", offsetof(T, f))
int main(void) {
    printf("AllocatorStats %zu\n", sizeof(AllocatorStats));
    F(AllocatorStats, arena_bytes); F(AllocatorStats, metadata_bytes);
    F(AllocatorStats, bytes_requested); F(AllocatorStats, bytes_reserved);
    F(AllocatorStats, bytes_free); F(AllocatorStats, largest_free_block);
    F(AllocatorStats, live_blocks); F(AllocatorStats, failed_allocs);
    F(AllocatorStats, rejected_frees);
    printf("AllocatorInfo %zu\n", sizeof(AllocatorInfo));
    F(AllocatorInfo, abi_version); F(AllocatorInfo, supported_flags);
    F(AllocatorInfo, properties); F(AllocatorInfo, reserved); F(AllocatorInfo, name);
    F(AllocatorInfo, description); F(AllocatorInfo, complexity); F(AllocatorInfo, alignment);
    F(AllocatorInfo, min_block); F(AllocatorInfo, min_arena);
    printf("ABI %u ALIGN %u LOCKED %u RETURN_PAGES %u UNKNOWN %zu\n", ALLOCATOR_ABI_VERSION,
           ALLOCATOR_ALIGNMENT, ALLOCATOR_FLAG_LOCKED, ALLOCATOR_FLAG_RETURN_PAGES, ALLOCATOR_STAT_UNKNOWN);
    printf("PROPS %u %u %u %u %u\n", ALLOCATOR_PROP_STATE_IN_ARENA, ALLOCATOR_PROP_NO_BLOCK_HEADER,
           ALLOCATOR_PROP_REJECTS_BAD_FREE, ALLOCATOR_PROP_REALLOC_IN_PLACE, ALLOCATOR_PROP_NO_SYSCALLS);
    return 0;
}
"#,
    )
    .unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("a C compiler (cc) is needed to check the header");
    assert!(status.success(), "the header does not compile");
    let output = Command::new(&exe).output().unwrap();
    let c = String::from_utf8(output.stdout).unwrap();

    macro_rules! field {
        ($t:ident . $f:ident) => {
            format!(
                "{}.{} {}",
                stringify!($t),
                stringify!($f),
                offset_of!($t, $f)
            )
        };
    }
    let rust = [
        format!("AllocatorStats {}", size_of::<AllocatorStats>()),
        field!(AllocatorStats.arena_bytes),
        field!(AllocatorStats.metadata_bytes),
        field!(AllocatorStats.bytes_requested),
        field!(AllocatorStats.bytes_reserved),
        field!(AllocatorStats.bytes_free),
        field!(AllocatorStats.largest_free_block),
        field!(AllocatorStats.live_blocks),
        field!(AllocatorStats.failed_allocs),
        field!(AllocatorStats.rejected_frees),
        format!("AllocatorInfo {}", size_of::<AllocatorInfo>()),
        field!(AllocatorInfo.abi_version),
        field!(AllocatorInfo.supported_flags),
        field!(AllocatorInfo.properties),
        field!(AllocatorInfo.reserved),
        field!(AllocatorInfo.name),
        field!(AllocatorInfo.description),
        field!(AllocatorInfo.complexity),
        field!(AllocatorInfo.alignment),
        field!(AllocatorInfo.min_block),
        field!(AllocatorInfo.min_arena),
        format!(
            "ABI {ALLOCATOR_ABI_VERSION} ALIGN {ALLOCATOR_ALIGNMENT} LOCKED {ALLOCATOR_FLAG_LOCKED} \
             RETURN_PAGES {ALLOCATOR_FLAG_RETURN_PAGES} UNKNOWN {ALLOCATOR_STAT_UNKNOWN}"
        ),
        format!(
            "PROPS {ALLOCATOR_PROP_STATE_IN_ARENA} {ALLOCATOR_PROP_NO_BLOCK_HEADER} \
             {ALLOCATOR_PROP_REJECTS_BAD_FREE} {ALLOCATOR_PROP_REALLOC_IN_PLACE} {ALLOCATOR_PROP_NO_SYSCALLS}"
        ),
    ];
    let c_lines: Vec<&str> = c.lines().collect();
    assert_eq!(c_lines, rust.iter().map(String::as_str).collect::<Vec<_>>());
}

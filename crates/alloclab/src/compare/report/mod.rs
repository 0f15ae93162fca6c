//! `alloclab compare --report DIR` and `--readme FILE` (to come); for now
//! what the CSV shares with them.

#[cfg(test)]
pub(crate) mod sample;

/// The operation whose latency describes a timed phase: `free` phases free,
/// realloc phases (`grow`, `shrink`, or a name with "realloc") realloc,
/// everything else (`alloc`, `mixed`, `replay`) allocates.
pub fn main_op(phase: &str) -> &'static str {
    if phase.contains("free") {
        "free"
    } else if phase == "grow" || phase == "shrink" || phase.contains("realloc") {
        "realloc"
    } else {
        "alloc"
    }
}

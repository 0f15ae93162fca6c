//! How numbers and lists are written in tables, reports and READMEs:
//! `1.8x`, `152 ns`, `74.7%`, `1 MiB`, `a, b and c`; and how a byte count
//! is read from the command line (`64K`, `1M`).

/// `1.03x`, `1.8x`, `12x`, `1200x`.
pub fn ratio(x: f64) -> String {
    if !x.is_finite() {
        "∞x".into()
    } else if x < 1.095 {
        format!("{x:.2}x")
    } else if x < 9.95 {
        format!("{x:.1}x")
    } else {
        format!("{x:.0}x")
    }
}

/// `9.1 ns`, `152 ns`, `12.3 µs`, `1.20 ms`.
pub fn ns(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x.abs() < 100.0 {
        format!("{x:.1} ns")
    } else if x.abs() < 10_000.0 {
        format!("{x:.0} ns")
    } else if x.abs() < 1e6 {
        format!("{:.1} µs", x / 1e3)
    } else {
        format!("{:.2} ms", x / 1e6)
    }
}

/// `74.7%`.
pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", 100.0 * x)
    } else {
        "n/a".into()
    }
}

/// The singular or plural form for `n` subjects.
pub fn agree(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// `a`, `a and b`, `a, b and c`.
pub fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// `1 MiB`, `64 KiB`, `1000 B`.
pub fn bytes(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

/// Parses a byte count with an optional K/M/G suffix (powers of 1024; `K`,
/// `KB`, `KiB` all mean 1024).
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let lower = s.trim().to_ascii_lowercase();
    let unit = lower.trim_end_matches('b').trim_end_matches('i');
    let (digits, shift) = match unit.as_bytes().last() {
        Some(b'k') => (&unit[..unit.len() - 1], 10),
        Some(b'm') => (&unit[..unit.len() - 1], 20),
        Some(b'g') => (&unit[..unit.len() - 1], 30),
        _ => (unit, 0),
    };
    let n: usize = digits
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a byte count (e.g. 1048576, 1M, 64K)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))
}

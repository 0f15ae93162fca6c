//! Where and when a measurement runs, and the command that ran it (quoted
//! for a shell, without the machine's folders); and the folder an output
//! file goes into, made before anything is measured. Shared by `compare`
//! and `programs`.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::artifacts;

/// The machine and the command.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Online CPUs.
    pub cpus: usize,
    /// `uname -sr`.
    pub kernel: String,
    /// UTC date and time of the run.
    pub date: String,
    /// The command line.
    pub command: String,
}

/// Creates the folder an output file goes into, before anything is measured
/// (a results file that cannot be written should not cost a run).
pub fn output_dir(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && path.as_os_str() != "-" => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// `a` as a POSIX shell word: unchanged when it is plain, in single quotes otherwise.
pub fn shell_quote(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// Where and when a measurement runs (also used by `alloclab programs`).
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let uname = rustix::system::uname();
    Machine {
        cpu,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: format!(
            "{} {}",
            uname.sysname().to_string_lossy(),
            uname.release().to_string_lossy()
        ),
        date: utc_now(),
        // Without the machine's folders (`artifacts::report_arg`).
        command: std::env::args()
            .map(|a| shell_quote(&artifacts::report_arg(&a)))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// `YYYY-MM-DD HH:MM UTC` without a date crate (civil-from-days, H. Hinnant).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_quoted_for_a_shell() {
        assert_eq!(shell_quote("--only"), "--only");
        assert_eq!(shell_quote("mmap fallback"), "'mmap fallback'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn dates_are_civil() {
        let d = utc_now();
        assert!(
            d.ends_with(" UTC") && d.len() == "2026-11-26 12:00 UTC".len(),
            "{d}"
        );
        assert!(d.starts_with("20"), "{d}");
    }
}

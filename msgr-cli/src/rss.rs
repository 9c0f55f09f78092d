//! Resident memory of this process, read from `/proc/self/status`.
//!
//! `VmHWM` is the peak resident set ("high water mark") since the process started, or since
//! [`reset_peak`] brought it down to the resident set of that moment; `VmRSS` is the resident
//! set now. Both are reported by Linux in KiB. On a system without `/proc` both read as
//! `None`, and the report says "unknown" rather than a made-up number.

use std::fs;

/// The peak resident set size of this process in bytes (`VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    status_field("VmHWM:")
}

/// Resets this process's peak resident set (`VmHWM`) to its resident set now, by writing `5`
/// to `/proc/self/clear_refs` (Linux 4.0 and later); false when that is not possible, and
/// the peak then stays the process's since it started.
pub fn reset_peak() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The current resident set size of this process in bytes (`VmRSS`).
pub fn current_rss_bytes() -> Option<u64> {
    status_field("VmRSS:")
}

/// The current resident set size of process `pid` in bytes (`VmRSS`).
pub fn rss_of_pid(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_field(&status, "VmRSS:")
}

fn status_field(name: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    parse_field(&status, name)
}

/// Finds `name` (with its colon) in a `/proc/<pid>/status` text and returns its value in bytes.
fn parse_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let mut words = line[name.len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => Some(value * 1024),
        None => Some(value),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kib_fields() {
        let status = "Name:\tmsgr\nVmHWM:\t  12345 kB\nVmRSS:\t   2048 kB\n";
        assert_eq!(parse_field(status, "VmHWM:"), Some(12345 * 1024));
        assert_eq!(parse_field(status, "VmRSS:"), Some(2048 * 1024));
        assert_eq!(parse_field(status, "VmSwap:"), None);
    }

    #[test]
    fn reset_peak_brings_the_peak_down_to_the_resident_set() {
        if !cfg!(target_os = "linux") {
            return;
        }
        // Touch 64 MiB, free it: the peak stays at least that much above what remains.
        let before = peak_rss_bytes().expect("VmHWM on linux");
        let big = vec![1u8; 64 << 20];
        assert_eq!(
            big.iter().step_by(4096).map(|&b| u64::from(b)).sum::<u64>(),
            16384
        );
        drop(big);
        let peak = peak_rss_bytes().expect("VmHWM on linux");
        assert!(
            peak >= before.max(64 << 20),
            "peak {peak} after touching 64 MiB"
        );
        assert!(reset_peak(), "writing /proc/self/clear_refs");
        let status = fs::read_to_string("/proc/self/status").expect("status on linux");
        let reset = parse_field(&status, "VmHWM:").expect("VmHWM");
        // Other test threads may touch a little memory meanwhile; 64 MiB went away.
        assert!(
            reset + (32 << 20) < peak,
            "VmHWM {reset} after the reset, {peak} before"
        );
    }

    #[test]
    fn reads_this_process() {
        if cfg!(target_os = "linux") {
            assert!(current_rss_bytes().is_some_and(|b| b > 0));
            assert!(peak_rss_bytes().is_some_and(|b| b > 0));
            // Both from one snapshot: other test threads change the resident set between two
            // reads (and Linux's per-CPU RSS counters are approximate), but within one read
            // the kernel reports VmHWM as at least VmRSS.
            let status = fs::read_to_string("/proc/self/status").expect("status on linux");
            let now = parse_field(&status, "VmRSS:").expect("VmRSS");
            let peak = parse_field(&status, "VmHWM:").expect("VmHWM");
            assert!(peak >= now && now > 0, "VmHWM {peak} < VmRSS {now}");
        }
    }
}

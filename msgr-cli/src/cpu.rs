//! CPU time of this process: the clock `msgr bench` reads around each run to report CPU per
//! message and how many CPUs the run kept busy (both ends of an embedded server count, as
//! both are this process).
//!
//! `CLOCK_PROCESS_CPUTIME_ID`: user and system time of every thread of the process, living or
//! ended, to the nanosecond. Not here: per-thread or per-task splits (`perf` and callgrind
//! give those; see PERFORMANCE.md).

use std::time::Duration;

/// CPU time this process has used so far, all threads together.
pub fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_this_threads_work() {
        let before = process_cpu();
        // A fixed amount of work the optimiser cannot drop: 20 million dependent steps take
        // some milliseconds of CPU however loaded the machine (CPU time runs only while the
        // thread does).
        let mut x = 1u64;
        for _ in 0..20_000_000u32 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let used = process_cpu().saturating_sub(before);
        assert!(
            used >= Duration::from_millis(2) && used < Duration::from_secs(10),
            "{used:?} of CPU for 20 million steps ({x})"
        );
        assert!(process_cpu() >= before + used, "the clock went back");
    }
}

//! The process's own figures for `/metrics`: resident memory and CPU time.

/// The process's own figures, read from `/proc/self` when `/metrics` is rendered. procfs
/// reads never wait on a disk, so a coroutine may make them; zeros where they are missing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessFigures {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

impl ProcessFigures {
    pub fn read() -> Self {
        // SAFETY: sysconf takes a constant and touches no memory of ours.
        let (page, ticks) = unsafe {
            (
                libc::sysconf(libc::_SC_PAGESIZE),
                libc::sysconf(libc::_SC_CLK_TCK),
            )
        };
        let rss_pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        // Fields after the command name's closing parenthesis: state is the first, utime the
        // 12th and stime the 13th (proc(5) fields 14 and 15).
        let cpu_ticks = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 1..];
                let mut fields = rest.split_whitespace().skip(11);
                let utime: u64 = fields.next()?.parse().ok()?;
                let stime: u64 = fields.next()?.parse().ok()?;
                Some(utime + stime)
            })
            .unwrap_or(0);
        ProcessFigures {
            rss_bytes: rss_pages * page.max(0) as u64,
            cpu_seconds: if ticks > 0 {
                cpu_ticks as f64 / ticks as f64
            } else {
                0.0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_figures_are_read_from_proc() {
        let p = ProcessFigures::read();
        assert!(p.rss_bytes > 1 << 20, "{p:?}");
        // Burn a little CPU so that the counter is above zero at any tick rate.
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(ProcessFigures::read().cpu_seconds > 0.0);
    }
}

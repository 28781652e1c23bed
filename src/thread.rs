//! The writer thread's place in the OS scheduler.
//!
//! With [`Idle::Park`] the writer shares a core with an HTTP worker and is woken for every
//! run of POSTs that finds it asleep. A plain thread (`SCHED_OTHER`) that is woken may take
//! the core from the thread that woke it at once: the worker stops in the middle of its
//! connections, the writer applies one run, parks, and the worker resumes, two context
//! switches a run. Under `SCHED_BATCH` a wake-up never preempts the running thread, so the
//! writer runs when the worker waits for the network (or at the scheduler's tick), and finds
//! every run of that turn in one batch. Its share of the CPU is unchanged: only wake-up
//! preemption differs (sched(7)). With [`Idle::Spin`] the writer is left as it is.
//!
//! Measured in BENCHMARKS.md ("Writer idle"): parking at once without `SCHED_BATCH` cost
//! 1.7× the CPU per POST of spinning, unpipelined; with it, the same as spinning.

use crate::writer::Idle;

/// Sets the calling thread's scheduling policy for `idle`; called once, by the writer
/// thread, before it takes events. A refusal (a sandbox that forbids the call) is logged and
/// costs only speed.
pub fn enter_writer(idle: Idle) {
    if idle == Idle::Spin {
        return;
    }
    if let Err(e) = batch_policy() {
        tracing::warn!(error = %e, "writer: cannot set SCHED_BATCH; its wake-ups may preempt the HTTP workers");
    }
}

#[cfg(target_os = "linux")]
fn batch_policy() -> std::io::Result<()> {
    // SCHED_BATCH takes no static priority: it must be 0.
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, initialised sched_param that lives across the call, which
    // only reads it; pid 0 names the calling thread, so no other thread is affected.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn batch_policy() -> std::io::Result<()> {
    Ok(())
}

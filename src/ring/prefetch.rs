//! A hint to the CPU to bring a cache line in before it is needed.
//!
//! The writer applies a batch of events whose users are random: at ten million users in an
//! hour the set is about 100 MB and nearly every lookup misses the caches, so applying one
//! event at a time waits for memory once per event. Asking for the cell of an event a few
//! places ahead overlaps those waits (see [`RingWriter::apply_batch`](super::RingWriter::apply_batch)).

/// Asks for the cache line holding `*r`, to be read (and maybe written) soon. Only a hint:
/// nothing changes if it is dropped, and it is a no-op on targets without one here.
#[inline(always)]
pub(super) fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch never faults and changes nothing the program can observe, and
        // the address comes from a live reference anyway; SSE is in every x86_64 CPU.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

//! What the HTTP edge asks of cluster mode's shared log, as a trait: `cluster` implements it
//! and `server` hands the implementation to the edge, so neither of the two names the other.

/// Cluster mode's log, as the edge sees it.
pub trait SharedLog: Send + Sync + std::fmt::Debug {
    /// Whether the log refuses events now (it has not acknowledged a batch within
    /// `--log-timeout`): POSTs get `503`, never counted.
    fn refusing(&self) -> bool;

    /// For `GET ...&fresh=1`: parks the calling coroutine (never its OS thread) until this
    /// server has applied everything the log held when the call began. False if that did not
    /// happen within `--fresh-timeout-ms` (the GET gets `504`).
    fn wait_fresh(&self) -> bool;

    /// Hands each of the log's figures to `out` as `(name, kind, help, value)`, for
    /// `/metrics`.
    fn figures(&self, out: &mut dyn FnMut(&'static str, &'static str, &'static str, u64));
}

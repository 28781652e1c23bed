//! Loom models of hourtally's concurrent protocols; see `tests/`.

#[cfg(not(hourtally_loom))]
compile_error!(
    "loom-tests must be built with RUSTFLAGS=\"--cfg hourtally_loom\" (see README, Verification)"
);

//! What the criterion benches share.

use std::time::Duration;

use criterion::Criterion;

/// Criterion's defaults, or, with `EMBER_BENCH_QUICK` set, short warm-up
/// and measurement for a quick look.
pub(crate) fn config() -> Criterion {
    let c = Criterion::default();
    if std::env::var_os("EMBER_BENCH_QUICK").is_some() {
        c.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
    } else {
        c
    }
}

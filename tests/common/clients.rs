//! What the tests with real clients share: the Python with aiortc, and reading `/metrics`.

use std::path::PathBuf;

/// The Python with aiortc: `SLUICE_PYTHON`, or the `.venv` that `scripts/test` creates.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICE_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "aiortc is not installed: run scripts/test (it creates .venv with aiortc), or set SLUICE_PYTHON"
    );
    venv
}

/// The sum of every sample of the Prometheus text `metrics` whose line starts with `prefix` and
/// contains `label` (e.g. `reason="muted"`; "" for any).
pub fn metric_sum(metrics: &str, prefix: &str, label: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

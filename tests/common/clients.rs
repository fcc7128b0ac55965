//! What the tests with real clients share: the Python with aiortc, and reading `/metrics`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

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

/// Runs `tests/clients/<script>` with the aiortc Python and `args`; it must succeed and print one JSON
/// line last, which is returned.
pub fn run_client_script(script: &str, args: &[&str]) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{script} prints JSON ({e}): {stdout}"))
}

//! What the tests with real clients share: the Python with aiortc, a private network namespace,
//! and reading `/metrics`.

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

/// A command that runs its program in a new network namespace where only `lo` exists (down until
/// the program brings it up), so nothing it sends can leave the machine: `unshare -n` as root,
/// `unshare -rn` (a user namespace mapping us to root) otherwise.
pub fn unshare_net() -> Command {
    let root_ok = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = Command::new("unshare");
    cmd.arg(if root_ok { "-n" } else { "-rn" });
    cmd
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

/// What the clients negotiated, from `sluice_dtls_established_total{profile,dtls}` in `metrics`:
/// e.g. `AEAD_AES_128_GCM over DTLSv1.2 (3)`, one entry per pair, for the "Works with" table.
pub fn negotiated(metrics: &str) -> String {
    let mut seen = Vec::new();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("sluice_dtls_established_total{"))
    {
        let label = |name: &str| {
            let start = line.find(&format!("{name}=\""))? + name.len() + 2;
            let len = line[start..].find('"')?;
            Some(line[start..start + len].to_string())
        };
        if let (Some(p), Some(d), Some(n)) =
            (label("profile"), label("dtls"), line.rsplit(' ').next())
        {
            seen.push(format!("{p} over {d} ({n})"));
        }
    }
    if seen.is_empty() {
        "no DTLS".into()
    } else {
        seen.join(", ")
    }
}

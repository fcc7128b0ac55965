//! What the browser tests share: finding the browsers and the node driver modules that
//! `scripts/test` installs, and running a driver script to its one JSON line.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The browser at `$env`, else `default`; panics with how to install it.
pub fn installed(env: &str, default: &str, what: &str) -> PathBuf {
    let p = std::env::var_os(env).map_or_else(|| default.into(), PathBuf::from);
    assert!(
        p.exists(),
        "{what} is not installed ({}): run scripts/test (it installs Debian's package), or set {env}",
        p.display()
    );
    p
}

/// Debian's Chromium (or `SLUICE_CHROMIUM`).
pub fn chromium() -> PathBuf {
    installed("SLUICE_CHROMIUM", "/usr/bin/chromium", "Chromium")
}

/// Panics unless the driver modules `modules` are in tests/clients/node_modules.
pub fn check_modules(modules: &[&str]) {
    for module in modules {
        assert!(
            root()
                .join("tests/clients/node_modules")
                .join(module)
                .exists(),
            "{module} is not installed: run scripts/test (it runs npm ci in tests/clients)"
        );
    }
}

/// Runs a driver command (in tests/clients); it must succeed and print one JSON line last without
/// an `error`, which is returned.
pub fn run_driver(mut cmd: Command) -> Value {
    let out = cmd
        .current_dir(root().join("tests/clients"))
        .output()
        .expect("unshare and node run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the driver prints JSON ({e}): {stdout}\n{stderr}"));
    assert!(
        out.status.success() && result["error"].is_null(),
        "the browser scenario failed: {}\n{stderr}",
        serde_json::to_string_pretty(&result).unwrap_or_default()
    );
    result
}

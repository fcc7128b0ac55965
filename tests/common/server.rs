//! A real `sluice serve` process on loopback for end-to-end tests, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Server {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
    _state: tempdir::TempDir,
}

pub mod tempdir {
    /// A directory removed on drop.
    pub struct TempDir(pub std::path::PathBuf);
    impl TempDir {
        pub fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "sluice-{tag}-{}-{}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `sluice serve` on ephemeral loopback ports with one worker, its state in `state_dir`, no API key
/// from the environment, stdout piped (its first line names the URL) and stderr silenced.
pub fn serve_command(state_dir: &std::path::Path) -> Command {
    serve_command_with(state_dir, "127.0.0.1:0", 1)
}

/// [`serve_command`] with its HTTP listener on `http` (e.g. `0.0.0.0:0`).
pub fn serve_command_at(state_dir: &std::path::Path, http: &str) -> Command {
    serve_command_with(state_dir, http, 1)
}

/// [`serve_command`] with `workers` workers.
pub fn serve_command_workers(state_dir: &std::path::Path, workers: usize) -> Command {
    serve_command_with(state_dir, "127.0.0.1:0", workers)
}

/// [`serve_command`] with its HTTP listener on `http` and `workers` workers.
pub fn serve_command_with(state_dir: &std::path::Path, http: &str, workers: usize) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    let workers = workers.to_string();
    cmd.args([
        "serve",
        "--http",
        http,
        "--udp-port",
        "0",
        "--workers",
        &workers,
        "--state-dir",
    ])
    .arg(state_dir)
    .env_remove("SLUICE_API_KEY")
    .stdout(Stdio::piped());
    // SLUICE_TEST_SERVER_LOG=1 shows the servers' logs (with RUST_LOG) when debugging a test.
    if std::env::var_os("SLUICE_TEST_SERVER_LOG").is_none() {
        cmd.stderr(Stdio::null());
    }
    cmd
}

/// Sends SIGTERM to a child we have not reaped yet.
pub fn sigterm(child: &Child) {
    // kill(1) rather than libc::kill: the test crates carry no `unsafe` (docs/architecture.md).
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        Self::start_with("127.0.0.1:0", 1, extra)
    }

    /// [`Server::start`] with the HTTP listener on `http` (e.g. `0.0.0.0:0`).
    pub fn start_at(http: &str, extra: &[&str]) -> Server {
        Self::start_with(http, 1, extra)
    }

    /// [`Server::start`] with `workers` dataplane workers.
    pub fn start_with_workers(workers: usize, extra: &[&str]) -> Server {
        Self::start_with("127.0.0.1:0", workers, extra)
    }

    /// [`Server::start`] with the HTTP listener on `http` and `workers` dataplane workers.
    pub fn start_with(http: &str, workers: usize, extra: &[&str]) -> Server {
        let state = tempdir::TempDir::new("rest");
        let mut child = serve_command_with(&state.0, http, workers)
            .args(extra)
            .spawn()
            .expect("sluice serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next()
            .expect("a first line")
            .expect("readable stdout");
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .to_string();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base,
            _state: state,
        }
    }

    /// A cluster node `id` in `region` with its HTTP listener on `http`, Redis at `redis_url`, and
    /// the API key and token secret every node of the cluster shares.
    pub fn cluster_node(
        http: &str,
        redis_url: &str,
        id: &str,
        region: &str,
        (key, secret): (&str, &str),
    ) -> Server {
        Self::start_with(
            http,
            1,
            &[
                "--api-key",
                key,
                "--token-secret",
                secret,
                "--redis",
                redis_url,
                "--node-id",
                id,
                "--region",
                region,
            ],
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        sigterm(&self.child);
        // A cluster node drains first: its rooms move, then it waits their move grace.
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("sluice did not stop within 15 s of SIGTERM");
    }
}

impl Drop for Server {
    /// A test that fails before `terminate` must not leave its server running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Server {
    /// Kills it with SIGKILL (no goodbye, as a crash or `kill -9`) and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `GET /metrics` (open unless the server runs with `--metrics-auth`): the Prometheus text.
    pub fn metrics(&self) -> String {
        reqwest::blocking::get(self.url("/metrics"))
            .and_then(|r| r.text())
            .expect("GET /metrics")
    }
}

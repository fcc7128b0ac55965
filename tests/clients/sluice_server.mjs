// `sluice serve` for the browser tests (chromium_room.mjs, firefox_room.mjs, chromium_cluster.mjs),
// started as an operator would: from a TOML file with two workers (so two pages land on different
// workers and their audio crosses the relay rings), the API key and a state directory, with debug
// logs of the media module. Resolves once the server prints its URL.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts `bin serve` with `key` and `workDir` as its state directory; returns
 * `{ base, pid, api(method, path, body), log(), stop(), kill() }`: the base URL, the process id, an
 * admin REST call (throws on an error status), the server's stderr so far, a SIGTERM that resolves
 * to the exit code (or "timeout" after 10 s), and a SIGKILL that resolves once it is gone.
 * `options`: `http` (the listener, default 127.0.0.1:0), `workers` (default 2), `config` (more TOML
 * lines, e.g. a cluster node's `redis`, `node_id`, `region`, `token_secret`) and `rustLog`. */
/** Headless Chromium's flags for the tests: fake microphone, no prompts, loopback ICE allowed, no
 * background traffic; then `extra`, then those in SLUICE_CHROMIUM_ARGS. */
export function chromiumArgs(extra = []) {
  return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
    ...extra, ...(process.env.SLUICE_CHROMIUM_ARGS || "").split(" ").filter(Boolean)];
}

export async function startSluice(bin, workDir, key, options = {}) {
  const { http = "127.0.0.1:0", workers = 2, config: more = [], rustLog } = options;
  const config = join(workDir, "sluice.toml");
  writeFileSync(config, [
    `http = "${http}"`, `udp_port = 0`, `workers = ${workers}`, `api_key = "${key}"`,
    `state_dir = ${JSON.stringify(workDir)}`, ...more, "",
  ].join("\n"));
  const server = spawn(bin, ["serve", "--config", config], { stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: rustLog || process.env.RUST_LOG || "info,sluice_controlplane::media=debug" } });
  let log = "";
  server.stderr.on("data", (d) => { log += d; });
  const base = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`sluice did not start: ${out}${log}`)), 20000);
    server.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[0-9.:]+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    server.on("exit", (code) => reject(new Error(`sluice exited ${code}: ${out}${log}`)));
  });
  async function api(method, path, body) {
    const r = await fetch(base + path, {
      method, headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: body && JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text;
  }
  async function stop() {
    server.kill("SIGTERM");
    const [code] = await Promise.race([once(server, "exit"), sleep(10000).then(() => ["timeout"])]);
    return code;
  }
  async function kill() {
    if (server.exitCode !== null || server.signalCode !== null) return;
    const gone = once(server, "exit");
    server.kill("SIGKILL");
    await gone;
  }
  return { base, pid: server.pid, api, log: () => log, stop, kill };
}

// Firefox ESR (Debian's firefox-esr, driven by puppeteer-core over WebDriver BiDi) against a real
// `sluice serve`, both inside a private network namespace (`unshare -n`: only `lo` exists, so
// 127.0.0.1 is the one ICE candidate and nothing leaves the machine). tests/firefox_clients.rs runs it:
//
//   unshare -n node tests/clients/firefox_room.mjs <sluice binary> <work dir> <sfu|p2p|mixed> <seconds>
//
// It brings `lo` up, starts `sluice serve`, creates a room over REST and opens sluice's web page at
// `/` in Firefox (fake microphone: a sine tone of FIREFOX_HZ):
// - `sfu`, `p2p`: two Firefox pages join a room of that mode and talk for <seconds>;
// - `mixed`: an `auto` room with p2p_max 2: a Firefox page and a Chromium page (playwright-core; its
//   fake microphone plays a WAV file of CHROMIUM_HZ) mesh peer to peer (`p2p` in the result, with
//   sluice's packet counter, which must stay 0); then an aiortc client (tests/clients/aiortc_member.py,
//   a tone of AIORTC_HZ; started early, since importing aiortc takes a while, and told when to join)
//   joins, the room switches to the SFU, the pages move onto sluice (make-before-break), and all
//   three measure what they hear in one window (`sfu`: `pages`, `aiortc`).
// Each page reports, per receive slot (SFU) or per peer (mesh), getStats and the tone it decoded: 1.5 s
// of the received track recorded with MediaRecorder and decoded offline (no audio device needed), its
// strongest frequency, the share of the energy there, and the RMS. It prints one JSON line, with the
// server's /metrics, the "DTLS-SRTP established" lines (profile, DTLS version) and the browsers'
// transport stats. Exit code 0 when it could run the scenario (the Rust test judges the results),
// non-zero with a message otherwise.

import { spawn, execFileSync } from "node:child_process";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import puppeteer from "puppeteer-core";
import { chromiumArgs, startSluice } from "./sluice_server.mjs";

const [bin, workDir, scenario = "sfu", secondsArg = "5"] = process.argv.slice(2);
if (!bin || !workDir || !["sfu", "p2p", "mixed"].includes(scenario)) {
  console.error("usage: firefox_room.mjs <sluice binary> <work dir> <sfu|p2p|mixed> [seconds]");
  process.exit(2);
}
const SECONDS = Number(secondsArg);
const KEY = "firefox-test-key-0123456789abcdefghijklmnop";
const ROOM = "firefox";
const FIREFOX = process.env.SLUICE_FIREFOX || "/usr/bin/firefox-esr";
const CHROMIUM = process.env.SLUICE_CHROMIUM || "/usr/bin/chromium";
const PYTHON = process.env.SLUICE_PYTHON || "python3";
const FIREFOX_HZ = 1000;
const CHROMIUM_HZ = 440;
const AIORTC_HZ = 660;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const timing = {};
const mark = (what) => { timing[what] = (Date.now() - t0) / 1000; };

execFileSync("ip", ["link", "set", "lo", "up"]);

const sluice = await startSluice(bin, workDir, KEY);
const { base, api } = sluice;

const serverPacketsIn = async () => (await (await fetch(`${base}/metrics`)).text()).split("\n")
  .filter((l) => l.startsWith("sluice_packets_in_total"))
  .reduce((n, l) => n + Number(l.split(" ").pop()), 0);

// Polls `cond` every 250 ms for up to `seconds`; true once it held.
async function until(cond, seconds) {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    if (await cond()) return true;
    await sleep(250);
  }
  return false;
}

// A WAV file (48 kHz, mono, 16 bit) of a 2 s sine tone of `hz`, for Chromium's fake microphone.
function toneWav(path, hz) {
  const rate = 48000, n = rate * 2;
  const buf = Buffer.alloc(44 + n * 2);
  buf.write("RIFF", 0); buf.writeUInt32LE(36 + n * 2, 4); buf.write("WAVEfmt ", 8);
  buf.writeUInt32LE(16, 16); buf.writeUInt16LE(1, 20); buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24); buf.writeUInt32LE(rate * 2, 28); buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34); buf.write("data", 36); buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) buf.writeInt16LE(Math.round(8000 * Math.sin(2 * Math.PI * hz * i / rate)), 44 + 2 * i);
  writeFileSync(path, buf);
}

// Runs in a page: what it knows (window.sluice), getStats per slot and per mesh peer, its transport
// stats, and the tone on each received track (1.5 s recorded, decoded offline: the strongest
// frequency between 100 and 2000 Hz in the middle 0.5 s, the share of the energy at it, and the RMS).
async function pageSnapshot() {
  const s = window.sluice.state;
  const record = async (track) => {
    const mr = new MediaRecorder(new MediaStream([track]));
    const chunks = [];
    mr.ondataavailable = (e) => chunks.push(e.data);
    const stopped = new Promise((r) => { mr.onstop = r; });
    mr.start();
    await new Promise((r) => setTimeout(r, 1500));
    mr.stop();
    await stopped;
    const blob = new Blob(chunks, { type: mr.mimeType });
    const decoded = await new OfflineAudioContext(1, 48000, 48000).decodeAudioData(await blob.arrayBuffer());
    const all = decoded.getChannelData(0);
    const rate = decoded.sampleRate;
    const x = all.subarray(Math.floor(all.length / 2 - rate / 4), Math.floor(all.length / 2 + rate / 4));
    let energy = 0;
    for (const v of x) energy += v * v;
    let best = { hz: 0, power: 0 };
    for (let hz = 100; hz <= 2000; hz += 2) {
      const w = 2 * Math.PI * hz / rate, c = 2 * Math.cos(w);
      let s1 = 0, s2 = 0;
      for (let i = 0; i < x.length; i++) { const s0 = x[i] + c * s1 - s2; s2 = s1; s1 = s0; }
      const power = s1 * s1 + s2 * s2 - c * s1 * s2;
      if (power > best.power) best = { hz, power };
    }
    return { hz: best.hz, share: energy > 0 ? Math.min(1, 2 * best.power / x.length / energy) : 0,
             rms: Math.sqrt(energy / x.length), seconds: all.length / rate };
  };
  const tracks = [];  // [where: "sfu" | "mesh", key: mid | peer id, track]
  if (s.sfu) {
    for (const t of s.sfu.pc.getTransceivers()) {
      if (t.direction === "recvonly" && t.receiver.track && s.slots.get(t.mid)) tracks.push(["sfu", t.mid, t.receiver.track]);
    }
  }
  for (const [id, peer] of s.mesh) {
    for (const r of peer.pc.getReceivers()) if (r.track) tracks.push(["mesh", id, r.track]);
  }
  const tones = { sfu: {}, mesh: {} };
  await Promise.all(tracks.map(async ([where, key, track]) => {
    try { tones[where][key] = await record(track); } catch (e) { tones[where][key] = { error: String(e) }; }
  }));
  const transport = [];
  const pcs = [...(s.sfu ? [["sfu", s.sfu.pc]] : []), ...[...s.mesh].map(([id, p]) => [id, p.pc])];
  for (const [via, pc] of pcs) {
    (await pc.getStats()).forEach((x) => {
      if (x.type === "transport") {
        transport.push({ via, dtlsState: x.dtlsState, tlsVersion: x.tlsVersion, dtlsCipher: x.dtlsCipher,
                         srtpCipher: x.srtpCipher, dtlsRole: x.dtlsRole });
      }
    });
  }
  const inbound = [];
  if (s.sfu) {
    (await s.sfu.pc.getStats()).forEach((x) => {
      if (x.type === "inbound-rtp") {
        inbound.push({ mid: x.mid, ssrc: x.ssrc, packetsReceived: x.packetsReceived, audioLevel: x.audioLevel,
                       totalAudioEnergy: x.totalAudioEnergy });
      }
    });
  }
  return {
    me: s.me && s.me.id,
    mode: s.mode,
    switches: s.switches.map((x) => x.mode),
    connection: s.sfu ? s.sfu.pc.connectionState : "none",
    members: [...s.members.values()].map((m) => m.name).sort(),
    slots: Object.fromEntries(s.slots),
    speakersSeen: [...s.speakersSeen],
    stats: await window.sluice.stats(),
    inbound,
    mesh: await window.sluice.meshStats(),
    tones,
    transport,
    status: document.getElementById("status").textContent,
  };
}

let firefox;
let chromium;
let aiortc;
let aiortcErr = "";
let nextLine;  // the aiortc member's next JSON line
const result = { scenario, hz: { firefox: FIREFOX_HZ, chromium: CHROMIUM_HZ, aiortc: AIORTC_HZ } };
const pages = [];
const snapshot = async (which = pages) => Promise.all(which.map(async ({ page, log, name, browser }) => ({
  name, browser, ...(await page.evaluate(pageSnapshot)), log: log.slice(-20),
})));
try {
  const mixed = scenario === "mixed";
  await api("POST", "/v1/rooms", mixed ? { name: ROOM, mode: "auto", p2p_max: 2, last_n: 3 }
    : { name: ROOM, mode: scenario, last_n: 3 });
  if (mixed) {
    // The aiortc member starts now (importing aiortc takes a while) and joins when told.
    aiortc = spawn(PYTHON, [join(process.cwd(), "aiortc_member.py"), base, KEY, ROOM, "aiortc", String(AIORTC_HZ), "2",
      String(SECONDS)], { stdio: ["pipe", "pipe", "pipe"] });
    aiortc.stderr.on("data", (d) => { aiortcErr += d; });
    const aiortcLines = createInterface({ input: aiortc.stdout })[Symbol.asyncIterator]();
    nextLine = async (seconds) => {
      const r = await Promise.race([aiortcLines.next(), sleep(seconds * 1000).then(() => ({ done: true, timeout: true }))]);
      if (r.done) throw new Error(`aiortc_member.py: no output${r.timeout ? " in time" : ""}: ${aiortcErr}`);
      return JSON.parse(r.value);
    };
  }
  firefox = await puppeteer.launch({
    browser: "firefox",
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: {
      // The fake microphone, counted as capturing (else Firefox offers only its default route's
      // address, which this namespace lacks), without a permission prompt.
      "media.navigator.streams.fake": true,
      "media.navigator.permission.disabled": true,
      "media.navigator.permission.fake": true,
      "media.navigator.audio.fake_frequency": FIREFOX_HZ,
      // Host candidates on loopback, unobfuscated (no mDNS names).
      "media.peerconnection.ice.loopback": true,
      "media.peerconnection.ice.obfuscate_host_addresses": false,
      "media.autoplay.default": 0,
      ...(process.env.SLUICE_FIREFOX_PREFS ? JSON.parse(process.env.SLUICE_FIREFOX_PREFS) : {}),
      // No microphone-sharing indicator window.
      "privacy.webrtc.hideGlobalIndicator": true,
      // The first page is a background tab: do not slow its timers down.
      "dom.min_background_timeout_value": 4,
      "dom.timeout.enable_budget_timer_throttling": false,
    },
  });
  result.firefox = await firefox.version();
  mark("firefox_started");
  // All tabs first, then the pages: once a page captures the microphone, a new tab could land in
  // the sharing indicator's window (hidden above too) instead of a browser window.
  const firefoxTabs = async (n) => {
    const tabs = [(await firefox.pages())[0] || await firefox.newPage()];
    while (tabs.length < n) tabs.push(await firefox.newPage());
    return tabs;
  };
  const openFirefox = async (page, name) => {
    const log = [];
    page.on("console", (m) => log.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
    await page.goto(`${base}/?room=${ROOM}&name=${name}&autojoin=1`);
    pages.push({ page, log, name, browser: "firefox" });
  };

  if (!mixed) {
    const tabs = await firefoxTabs(2);
    await openFirefox(tabs[0], "firefox0");
    await openFirefox(tabs[1], "firefox1");
    mark("pages_open");
    await sleep(SECONDS * 1000);
    result.pages = await snapshot();
    mark("measured");
  } else {
    const { chromium: playwrightChromium } = await import("playwright-core");
    const wav = join(workDir, `tone-${CHROMIUM_HZ}.wav`);
    toneWav(wav, CHROMIUM_HZ);
    chromium = await playwrightChromium.launch({
      executablePath: CHROMIUM,
      args: chromiumArgs([`--use-file-for-fake-audio-capture=${wav}`]),
    });
    result.chromium = chromium.version();
    mark("chromium_started");
    // Firefox joins first (the smaller id: it makes the mesh offer to Chromium).
    await openFirefox((await firefoxTabs(1))[0], "firefox");
    const context = await chromium.newContext();
    const cpage = await context.newPage();
    const clog = [];
    cpage.on("console", (m) => clog.push(`${m.type()}: ${m.text()}`));
    cpage.on("pageerror", (e) => clog.push(`pageerror: ${e.message}`));
    await cpage.goto(`${base}/?room=${ROOM}&name=chromium&autojoin=1`);
    pages.push({ page: cpage, log: clog, name: "chromium", browser: "chromium" });
    mark("pages_open");
    // 1. Two members: a direct connection, audio both ways, nothing through sluice.
    const meshUp = await until(async () => {
      for (const { page } of pages) {
        const ok = await page.evaluate(async () => {
          const m = Object.values(await window.sluice.meshStats());
          return window.sluice.state.mode === "p2p" && m.length === 1 && m[0].state === "connected" && m[0].packetsReceived > 50;
        });
        if (!ok) return false;
      }
      return true;
    }, 20);
    mark("mesh_up");
    await sleep(SECONDS * 500);
    result.p2p = { ready: meshUp, pages: await snapshot(), server_packets_in: await serverPacketsIn() };
    mark("p2p_measured");

    // 2. aiortc joins: three members, above p2p_max, so the room switches to the SFU.
    aiortc.stdin.write("join\n");
    result.aiortc_ready = await nextLine(45);
    mark("aiortc_ready");
    const onSfu = await until(async () => {
      for (const { page } of pages) {
        const ok = await page.evaluate(async () => {
          const s = window.sluice.state;
          const carried = Object.entries(await window.sluice.stats()).filter(([mid, x]) => x.packetsReceived > 50 && s.slots.get(mid));
          return s.mode === "sfu" && s.mesh.size === 0 && s.sfu && s.sfu.pc.connectionState === "connected" && carried.length === 2;
        });
        if (!ok) return false;
      }
      return true;
    }, 25);
    mark("sfu_up");
    // 3. One window in which all three measure what they hear.
    aiortc.stdin.write("measure\n");
    const [snap, heard] = await Promise.all([snapshot(), nextLine(SECONDS + 20)]);
    result.sfu = { ready: onSfu, pages: snap, aiortc: heard };
    mark("sfu_measured");
    result.room = JSON.parse(await api("GET", `/v1/rooms/${ROOM}`));
    aiortc.stdin.end();
    await Promise.race([once(aiortc, "exit"), sleep(10000)]);
  }
  result.metrics = await (await fetch(`${base}/metrics`)).text();
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  if (aiortc && aiortc.exitCode === null) aiortc.kill("SIGTERM");
  if (firefox) await firefox.close().catch(() => {});
  if (chromium) await chromium.close().catch(() => {});
  result.server_exit = await sluice.stop();
  const lines = sluice.log().split("\n");
  // `DTLS-SRTP established transport=… profile="…"` (and `participant=…`, `dtls="DTLSv1.2"` where the
  // server logs them); `offer answered … participant=… transport=…` names each transport's member.
  const field = (l, k) => (l.match(new RegExp(`\\b${k}="?([^"\\s]+)"?`)) || [])[1] || null;
  const owner = new Map(lines.filter((l) => l.includes("offer answered"))
    .map((l) => [field(l, "transport"), field(l, "participant")]));
  result.dtls = lines.filter((l) => l.includes("DTLS-SRTP established")).map((l) => ({
    transport: field(l, "transport"),
    participant: field(l, "participant") || owner.get(field(l, "transport")) || null,
    profile: field(l, "profile"),
    dtls: field(l, "dtls"),
  }));
  if (aiortcErr) result.aiortc_stderr = aiortcErr.split("\n").slice(-30).join("\n");
  result.client_hello_fragments = lines.filter((l) => l.includes("ClientHello fragment"));
  result.server_log = lines.filter((l) => !l.includes("DEBUG")).slice(-60).join("\n");
  mark("done");
  result.timing = timing;
}
console.log(JSON.stringify(result));
process.exit(result.error ? 1 : 0);

// What a real Chromium publisher hears of a listener's loss two hops away (sluice's receiver
// reports), and whether its Opus encoder answers with in-band FEC. tests/chromium_clients.rs runs it
// as:
//
//   unshare -n node tests/clients/chromium_fec.mjs <sluice binary> <work dir> <loss> <seconds>
//
// Inside the private namespace (only `lo`): `sluice serve`, an SFU room with two Chromium pages
// (`talker` and `lossy`, each with Chromium's fake microphone) and a plain RTP recorder (a UDP socket
// here, `POST /v1/rooms/{room}/plain`, so it reads the Opus that sluice forwards). The pages talk
// for <seconds> with no loss; then iptables drops <loss> (e.g. 0.05) of what sluice sends to the
// `lossy` page's port (its selected ICE candidate; on INPUT), and they talk <seconds> more. Sluice's
// receiver reports to the talker carry the worst loss among its stream's subscribers, so the talker
// hears of the loss although its own hop loses nothing, and an Opus encoder in SILK or hybrid mode
// would add in-band FEC (LBRR).
//
// Prints one JSON line: the talker's `remote-inbound-rtp` fraction lost every half second of the
// lossy phase; per phase and per slot stream the recorder's count of Opus packets by mode (SILK,
// hybrid, CELT: RFC 6716 3.1) and of those carrying LBRR (the SILK LBRR flag, RFC 6716 4.2.3: the bit
// after each frame's VAD flags, which the range coder writes as the first bits of the frame); each
// page's getStats (the lossy page's `inbound-rtp` packets lost and `fecPacketsReceived`) and
// iptables' counters.

import { execFileSync } from "node:child_process";
import dgram from "node:dgram";
import { chromium } from "playwright-core";
import { chromiumArgs, startSluice } from "./sluice_server.mjs";

const [bin, workDir, lossArg = "0.05", secondsArg = "8"] = process.argv.slice(2);
if (!bin || !workDir) {
  console.error("usage: chromium_fec.mjs <sluice binary> <work dir> [loss] [seconds]");
  process.exit(2);
}
const LOSS = Number(lossArg);
const SECONDS = Number(secondsArg);
const KEY = "chromium-fec-test-key-0123456789abcdefghijk";
const ROOM = "fec";
const CHROMIUM = process.env.SLUICE_CHROMIUM || "/usr/bin/chromium";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Whether an Opus packet (RFC 6716 3.1) carries LBRR (FEC) data: SILK-only and hybrid modes
 * only (CELT-only has none); for each frame, the LBRR flag follows the VAD flags of its SILK frames
 * (one per 20 ms; per channel). Returns null for what is not an Opus packet we can read. */
function opusHasLbrr(p) {
  if (p.length < 2) return null;
  const toc = p[0];
  const config = toc >> 3;
  if (config >= 16) return false; // CELT-only
  const stereo = (toc & 0x04) !== 0;
  const ms = [10, 20, 40, 60][config & 3];
  const silkFrames = Math.max(1, ms / 20);
  const code = toc & 3;
  const frames = [];
  if (code === 0) frames.push(1);
  else if (code === 1) frames.push(1, 1 + (p.length - 1) / 2);
  else return null; // code 2/3 (several frames of other sizes): Chromium sends one 20 ms frame
  // Per channel: VAD flags (one per SILK frame), then the LBRR flag.
  const bit = (byte, i) => (byte >> (7 - i)) & 1;
  for (const at of frames) {
    const b = p[at];
    if (b === undefined) return null;
    if (bit(b, silkFrames)) return true;
    if (stereo && bit(b, 2 * silkFrames + 1)) return true;
  }
  return false;
}

/** Seconds since the driver started. */
const t0 = Date.now();
const now = () => (Date.now() - t0) / 1000;

execFileSync("ip", ["link", "set", "lo", "up"]);
const sluice = await startSluice(bin, workDir, KEY, { workers: 1 });
const { base, api } = sluice;
let browser;
const result = { loss: LOSS, seconds: SECONDS };
try {
  await api("POST", "/v1/rooms", { name: ROOM, mode: "sfu", last_n: 2 });

  // The recorder: counts Opus packets, and those with LBRR, per phase and slot SSRC.
  const recorder = dgram.createSocket("udp4");
  await new Promise((r) => recorder.bind(0, "127.0.0.1", r));
  let phase = "clean";
  const counts = { clean: {}, settling: {}, lossy: {}, done: {} };
  recorder.on("message", (m) => {
    if (m.length < 12 || m[0] >> 6 !== 2) return;
    if (m[1] >= 192 && m[1] <= 223) return; // RTCP (sluice's sender reports)
    const cc = m[0] & 0x0f;
    let at = 12 + 4 * cc;
    if (m[0] & 0x10) {
      if (m.length < at + 4) return;
      at += 4 + 4 * m.readUInt16BE(at + 2);
    }
    let end = m.length;
    if (m[0] & 0x20) end -= m[end - 1];
    if (end <= at) return;
    const ssrc = m.readUInt32BE(8).toString(16);
    const c = (counts[phase][ssrc] ||= { packets: 0, lbrr: 0, celt: 0, silk: 0, hybrid: 0 });
    const lbrr = opusHasLbrr(m.subarray(at, end));
    c.packets += 1;
    if (lbrr) c.lbrr += 1;
    const config = m[at] >> 3;
    if (config >= 16) c.celt += 1;
    else if (config >= 12) c.hybrid += 1;
    else c.silk += 1;
  });
  const rec = JSON.parse(await api("POST", `/v1/rooms/${ROOM}/plain`, {
    name: "recorder", role: "listener", remote: `127.0.0.1:${recorder.address().port}`, slots: 2,
  }));
  result.recorder = { slot_ssrcs: rec.slot_ssrcs };

  browser = await chromium.launch({ executablePath: CHROMIUM, args: chromiumArgs() });
  result.browser = browser.version();
  const pages = {};
  for (const name of ["talker", "lossy"]) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/?room=${ROOM}&name=${name}&autojoin=1`);
    pages[name] = page;
  }
  const connected = async (page) => page.evaluate(() => {
    const s = window.sluice.state;
    return s.sfu && s.sfu.pc.connectionState === "connected";
  });
  for (let i = 0; i < 150; i++) {
    if ((await connected(pages.talker)) && (await connected(pages.lossy))) break;
    await sleep(100);
  }
  result.connected_at_s = now();
  // What sluice's answer says of Opus (FEC needs `useinbandfec=1` there).
  result.answer_fmtp = await pages.talker.evaluate(() => window.sluice.state.sfu.pc.remoteDescription
    .sdp.split("\r\n").filter((l) => l.startsWith("a=fmtp") || l.startsWith("a=rtpmap")));

  // What getStats says: the selected pair's local port, the sender's receiver-report view
  // (remote-inbound-rtp), what came in (inbound-rtp).
  const stats = (page) => page.evaluate(async () => {
    const r = await window.sluice.state.sfu.pc.getStats();
    const all = [...r.values()];
    const pair = all.find((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded");
    const local = pair && r.get(pair.localCandidateId);
    const pick = (s, keys) => Object.fromEntries(keys.filter((k) => k in s).map((k) => [k, s[k]]));
    return {
      port: local ? local.port : null,
      remote_inbound: all.filter((s) => s.type === "remote-inbound-rtp" && s.kind === "audio")
        .map((s) => pick(s, ["ssrc", "fractionLost", "packetsLost", "roundTripTime"])),
      inbound: all.filter((s) => s.type === "inbound-rtp" && s.kind === "audio")
        .map((s) => pick(s, ["ssrc", "packetsReceived", "packetsLost", "fecPacketsReceived",
          "fecPacketsDiscarded", "concealedSamples", "totalSamplesReceived"])),
    };
  });

  // Phase 1: nobody loses anything. The first seconds are the encoders' start; count the rest.
  await sleep(2000);
  phase = "clean";
  for (const k of Object.keys(counts.clean)) delete counts.clean[k];
  await sleep(SECONDS * 1000);
  result.clean = { talker: await stats(pages.talker), lossy: await stats(pages.lossy) };

  // Phase 2: sluice → the lossy page loses LOSS of its packets.
  const port = result.clean.lossy.port;
  if (!port) throw new Error("the lossy page has no selected candidate pair");
  // On INPUT, so the sender never sees an error (a drop on OUTPUT fails the sendmsg, and sluice
  // sends the packet again). A rule that only counts what arrives for that port, then the drop.
  execFileSync("iptables", ["-A", "INPUT", "-i", "lo", "-p", "udp", "--dport", String(port)]);
  execFileSync("iptables", ["-A", "INPUT", "-i", "lo", "-p", "udp", "--dport", String(port),
    "-m", "statistic", "--mode", "random", "--probability", String(LOSS), "-j", "DROP"]);
  result.loss_on_at_s = now();
  // The encoder hears of the loss through receiver reports (once a second, smoothed): give it a
  // few seconds before counting.
  phase = "settling";
  await sleep(4000);
  phase = "lossy";
  // The talker's view of sluice's receiver reports, every half second (each report is one
  // second's window, so a single reading may be a clean one).
  result.talker_fraction_lost = [];
  for (let i = 0; i < SECONDS * 2; i++) {
    await sleep(500);
    const t = await stats(pages.talker);
    result.talker_fraction_lost.push(Math.max(0, ...t.remote_inbound.map((r) => r.fractionLost || 0)));
  }
  phase = "done";
  result.lossy = { talker: await stats(pages.talker), lossy: await stats(pages.lossy) };
  result.counts = { clean: counts.clean, lossy: counts.lossy };
  result.dropped_by_iptables = execFileSync("iptables", ["-L", "INPUT", "-n", "-v", "-x"]).toString();
  result.room = JSON.parse(await api("GET", `/v1/rooms/${ROOM}`));
  recorder.close();
} catch (e) {
  result.error = String(e && e.stack || e);
  result.server_log = sluice.log().slice(-4000);
} finally {
  if (browser) await browser.close().catch(() => {});
  result.server_exit = await sluice.stop();
}
console.log(JSON.stringify(result));

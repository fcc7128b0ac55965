// Headless Chromium against a real `sluice serve`, both inside a private network namespace
// (`unshare -n`: only `lo` exists, so 127.0.0.1 is the one ICE candidate and nothing leaves the
// machine). tests/chromium_clients.rs runs it as:
//
//   unshare -n node tests/clients/chromium_room.mjs <sluice binary> <work dir> <pages> <seconds> [mute] [hybrid]
//
// It brings `lo` up, starts `sluice serve`, creates a room with curl-equivalent REST calls, opens
// <pages> pages of the web page at `/` (each with Chromium's fake microphone) that join the room, lets
// them talk for <seconds>, and prints one JSON line: per page the receive-slot stats (getStats), the
// slots and active speakers the page was told about, and the server's /metrics. With `mute`, page0
// then presses Mute and the result says how many packets page1 still received from it afterwards.
// With `hybrid`: an auto room with p2p_max 3; three pages talk peer to peer (`p2p` in the result), a
// fourth joins and the room switches to the SFU (`pages`), two leave and after the cooldown the two
// left are back on a mesh (`back`). Exit code 0 when it
// could run the scenario (the Rust test judges the results), non-zero with a message otherwise.

import { execFileSync } from "node:child_process";
import { chromium } from "playwright-core";
import { chromiumArgs, startSluice } from "./sluice_server.mjs";

const [bin, workDir, pagesArg = "2", secondsArg = "6", ...flags] = process.argv.slice(2);
if (!bin || !workDir) {
  console.error("usage: chromium_room.mjs <sluice binary> <work dir> [pages] [seconds]");
  process.exit(2);
}
const PAGES = Number(pagesArg);
const SECONDS = Number(secondsArg);
const KEY = "chromium-test-key-0123456789abcdefghijklmnop";
const ROOM = "browsers";
const CHROMIUM = process.env.SLUICE_CHROMIUM || "/usr/bin/chromium";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

execFileSync("ip", ["link", "set", "lo", "up"]);

const sluice = await startSluice(bin, workDir, KEY);
const { base, api } = sluice;

let browser;
const result = { pages: [] };
try {
  const hybrid = flags.includes("hybrid");
  await api("POST", "/v1/rooms", hybrid ? { name: ROOM, mode: "auto", p2p_max: 3, p2p_return: 2, cooldown_s: 2, last_n: 3 }
    : { name: ROOM, mode: "sfu", last_n: 3 });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: chromiumArgs(),
  });
  result.browser = browser.version();
  const pages = [];
  const openPage = async (i) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const log = [];
    page.on("console", (m) => log.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
    await page.goto(`${base}/?room=${ROOM}&name=page${i}&autojoin=1`);
    pages.push({ page, log, name: `page${i}` });
  };
  const snapshot = async () => {
    const out = [];
    for (const { page, log, name } of pages) {
      const info = await page.evaluate(async () => {
        const s = window.sluice.state;
        return {
          me: s.me && s.me.id,
          mode: s.mode,
          switches: s.switches.map((x) => x.mode),
          connection: s.sfu ? s.sfu.pc.connectionState : "none",
          members: [...s.members.values()].map((m) => m.name).sort(),
          slots: Object.fromEntries(s.slots),
          speaking: [...s.speaking],
          speakersSeen: [...s.speakersSeen],
          stats: await window.sluice.stats(),
          mesh: await window.sluice.meshStats(),
          status: document.getElementById("status").textContent,
          dom_speaking: [...document.querySelectorAll("#members li.speaking")].map((li) => li.dataset.participant),
        };
      });
      out.push({ name, ...info, log: log.slice(-20) });
    }
    return out;
  };
  const serverPacketsIn = async () => (await (await fetch(`${base}/metrics`)).text()).split("\n")
    .filter((l) => l.startsWith("sluice_packets_in_total"))
    .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
  const talk = async (seconds) => { const end = Date.now() + seconds * 1000; while (Date.now() < end) await sleep(250); };

  // The longest time in which neither the mesh nor the SFU connection of pages[i] received a packet,
  // over `seconds`, for each i in `which`: the gap a listener would hear across a switch. What is
  // counted is only the silence the polls prove (from the end of the first poll that saw a count to
  // the start of the last one that saw it unchanged), so a page whose renderer answers slowly on a
  // busy machine does not look like one that heard nothing.
  const received = (page) => page.evaluate(async () => {
    const out = {};
    for (const [id, s] of Object.entries(await window.sluice.meshStats())) out[`mesh:${id}`] = s.packetsReceived;
    for (const [mid, s] of Object.entries(await window.sluice.stats())) out[`sfu:${mid}`] = s.packetsReceived;
    return out;
  });
  // Whether any connection received a packet between two looks (a closed one is no news).
  const advanced = (before, now) => Object.entries(now).some(([k, n]) => n > (before[k] ?? 0));
  const watchGaps = async (which, seconds) => {
    const watch = which.map(() => ({ last: null, quietFrom: 0, gap: 0 }));
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) {
      for (const [k, i] of which.entries()) {
        const start = Date.now();
        const now = await received(pages[i].page);
        const w = watch[k];
        if (w.last && !advanced(w.last, now)) {
          w.gap = Math.max(w.gap, start - w.quietFrom);
        } else {
          w.quietFrom = Date.now();
        }
        w.last = now;
      }
      await sleep(100);
    }
    return watch.map((w) => w.gap);
  };

  if (flags.includes("hybrid")) {
    // An auto room with p2p_max 3: three pages form a mesh (no media reaches sluice), then a fourth
    // joins, the room switches to the SFU, and the first three must keep hearing each other.
    for (let i = 0; i < 3; i++) await openPage(i);
    await talk(SECONDS);
    result.p2p = { pages: await snapshot(), server_packets_in: await serverPacketsIn() };
    await openPage(3);
    result.switch_gap_ms = await watchGaps([0, 1, 2], SECONDS + 2);
    // On a loaded machine a page's SFU connection may come up late (its mesh carries it meanwhile,
    // which the gaps above measure): give every page up to 15 s more until each of its slots carried
    // 2 s of audio, and say how long that took, before the snapshot the test checks.
    const settled = Date.now();
    const slotsCarry = async ({ page }) => {
      const s = Object.values(await page.evaluate(() => window.sluice.stats()));
      return s.length >= 3 && s.every((x) => x.packetsReceived > 100);
    };
    while (Date.now() - settled < 15000) {
      const ready = await Promise.all(pages.map(slotsCarry));
      if (ready.every(Boolean)) break;
      await sleep(250);
    }
    result.sfu_settled_ms = Date.now() - settled;
    result.pages = await snapshot();
    result.room = JSON.parse(await api("GET", `/v1/rooms/${ROOM}`));
    // The admin page, with the API key as Basic password, while the four talk through the SFU.
    const shot = process.env.SLUICE_ADMIN_SCREENSHOT;
    if (shot) {
      result.admin_unauthenticated = (await fetch(`${base}/admin`)).status;
      const context = await browser.newContext({ httpCredentials: { username: "admin", password: KEY } });
      const page = await context.newPage();
      const log = [];
      page.on("console", (m) => log.push(`${m.type()}: ${m.text()}`));
      await page.goto(`${base}/admin`);
      await page.waitForFunction(() => window.admin && window.admin.refreshes >= 3, null, { timeout: 15000 });
      result.admin = await page.evaluate(() => ({
        refreshes: window.admin.refreshes,
        rates: window.admin.rates,
        rooms: window.admin.rooms.map((r) => ({ name: r.name, mode: r.current_mode, connected: r.connected,
                                                members: r.participants.map((p) => p.name) })),
        nodes: window.admin.nodes.map((n) => ({ id: n.id, state: n.state, members: n.load.members })),
        error: document.getElementById("error").textContent,
        table: document.querySelector("#rooms tbody").innerText,
      }));
      result.admin.log = log;
      await page.screenshot({ path: shot, fullPage: true });
    }
    // Two pages leave: at p2p_return (2) for the cooldown (2 s) the room goes back to p2p, and the
    // two left mesh again and close their SFU connection once the mesh carries audio.
    for (const { page } of pages.splice(2)) await page.context().close();
    result.back_gap_ms = await watchGaps([0, 1], 10);
    const before = await serverPacketsIn();
    await talk(2);
    result.back = { pages: await snapshot(), server_packets_in: [before, await serverPacketsIn()],
                    room: JSON.parse(await api("GET", `/v1/rooms/${ROOM}`)) };
  } else {
    for (let i = 0; i < PAGES; i++) await openPage(i);
    // Talk for a while, then read what each page received. On a loaded machine (CI runs the suites
    // side by side) a page's DTLS handshake may finish seconds late: give every page up to 20 s more
    // until one of its slots carried over a second of decoded audio, and say how long that took.
    await talk(SECONDS);
    const settled = Date.now();
    const hears = async ({ page }) => Object.values(await page.evaluate(() => window.sluice.stats()))
      .some((x) => x.packetsReceived > 100 && x.totalSamplesReceived > 48000);
    while (Date.now() - settled < 20000) {
      const ready = await Promise.all(pages.map(hears));
      if (ready.every(Boolean)) break;
      await sleep(250);
    }
    result.sfu_settled_ms = Date.now() - settled;
    result.pages = await snapshot();
  }
  if (flags.includes("mute")) {
    // page0 mutes itself: the server stops forwarding it, page1 sees it marked muted.
    const received = async (page) => Object.values(await page.evaluate(() => window.sluice.stats()))
      .reduce((n, s) => n + s.packetsReceived, 0);
    await pages[0].page.click("#mute-btn");
    await sleep(1500);
    const before = await received(pages[1].page);
    await sleep(2000);
    const after = await received(pages[1].page);
    const shown = await pages[1].page.evaluate((id) => {
      const li = document.querySelector(`#members li[data-participant="${id}"]`);
      return li ? li.textContent : null;
    }, result.pages[0].me);
    result.mute = { before, after, shown };
  }
  const metricsResponse = await fetch(`${base}/metrics`);
  result.metrics = await metricsResponse.text();
  result.room = result.room || JSON.parse(await api("GET", `/v1/rooms/${ROOM}`));
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  if (browser) await browser.close().catch(() => {});
  result.server_exit = await sluice.stop();
  const lines = sluice.log().split("\n");
  result.client_hello_fragments = lines.filter((l) => l.includes("ClientHello fragment"));
  result.server_log = lines.filter((l) => !l.includes("DEBUG")).slice(-60).join("\n");
}
console.log(JSON.stringify(result));
process.exit(result.error ? 1 : 0);

// Headless Chromium pages in a sluice cluster: a real `redis-server` and three `sluice serve` nodes
// (127.0.0.11, .12, .13; regions eu, us, ap), all inside a private network namespace (`unshare -n`:
// only `lo` exists, so nothing leaves the machine). tests/chromium_cluster.rs runs it as:
//
//   unshare -n node tests/clients/chromium_cluster.mjs <sluice binary> <work dir> [pages]
//
// It brings `lo` up, starts Redis and the nodes, creates an SFU room through the first node, and
// opens <pages> (default 3) pages of the web page at `/`, page i from node i: each guest-joins
// through its node (the first join places the room on the first page's node) and opens signaling
// there, so the pages on the other nodes are redirected to the room's node. Once every page hears
// every other (packets growing on a slot announced as carrying it), the room's node is killed
// (SIGKILL, found with GET /v1/rooms/{room}). Every ~100 ms each page is sampled: a page has another
// back once a slot of the page's new SFU connection (after a new welcome) announced as carrying it
// received packets between two samples; the time from the kill to the sample that showed it is
// that page's gap for it. Prints one JSON line: the room before and after, per page its redirects,
// reconnection attempts, welcomes and gaps, and a final snapshot. Then the room's new node is
// drained through the third node: every page is redirected mid-session to the node the room moves
// to (`drain`: the longest silence per page over all its SFU connections, new welcomes, who it hears
// on its new connection). Exit code 0 when it could run the scenario (the Rust test judges the
// results), non-zero with a message otherwise.

import { execFileSync, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { chromiumArgs, startSluice } from "./sluice_server.mjs";

const [bin, workDir, pagesArg = "3"] = process.argv.slice(2);
if (!bin || !workDir) {
  console.error("usage: chromium_cluster.mjs <sluice binary> <work dir> [pages]");
  process.exit(2);
}
const PAGES = Number(pagesArg);
const KEY = "chromium-cluster-key-0123456789abcdefghijklmn";
const SECRET = "chromium-cluster-token-secret-0123456789abcdef";
const ROOM = "failover";
const REGIONS = ["eu", "us", "ap"];
const REDIS_PORT = 6379;  // the namespace is ours: any port is free
const CHROMIUM = process.env.SLUICE_CHROMIUM || "/usr/bin/chromium";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const T0 = Date.now();
const since = () => Date.now() - T0;

/** Polls `cond` every `every` ms until it is truthy (returned) or `ms` pass (null). */
async function until(cond, ms, every = 100) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await cond();
    if (v) return v;
    await sleep(every);
  }
  return null;
}

const canConnect = (port) => new Promise((resolve) => {
  const s = connect(port, "127.0.0.1");
  s.on("connect", () => { s.destroy(); resolve(true); });
  s.on("error", () => resolve(false));
});

execFileSync("ip", ["link", "set", "lo", "up"]);

let browser;
let redis;
const nodes = [];  // {id, region, sluice}
const result = { pages: [] };
try {
  redis = spawn("redis-server", ["--port", String(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
    "--appendonly", "no", "--protected-mode", "no"], { stdio: "ignore" });
  redis.on("error", (e) => { result.redis_error = String(e); });
  if (!await until(() => canConnect(REDIS_PORT), 10000, 50)) throw new Error("redis-server did not listen");

  for (const [i, region] of REGIONS.entries()) {
    const id = `n${i + 1}`;
    const dir = join(workDir, id);
    mkdirSync(dir, { recursive: true });
    const sluice = await startSluice(bin, dir, KEY, {
      http: `127.0.0.${11 + i}:0`, workers: 1, rustLog: "info",
      config: [`redis = "redis://127.0.0.1:${REDIS_PORT}"`, `node_id = "${id}"`, `region = "${region}"`,
        `token_secret = "${SECRET}"`],
    });
    nodes.push({ id, region, sluice });
  }
  result.nodes = nodes.map((n) => ({ id: n.id, region: n.region, base: n.sluice.base }));
  // Every node lists the three.
  const listsAll = async () => {
    for (const n of nodes) {
      const listed = JSON.parse(await n.sluice.api("GET", "/v1/nodes")).nodes.map((x) => x.id).sort();
      if (listed.join() !== "n1,n2,n3") return false;
    }
    return true;
  };
  if (!await until(listsAll, 10000)) throw new Error("the nodes did not list each other");
  const room = async (via) => JSON.parse(await via.sluice.api("GET", `/v1/rooms/${ROOM}`));
  await nodes[0].sluice.api("POST", "/v1/rooms", { name: ROOM, mode: "sfu", last_n: 3 });

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: chromiumArgs(),
  });
  result.browser = browser.version();
  const pages = [];
  for (let i = 0; i < PAGES; i++) {
    const node = nodes[i % nodes.length];
    const context = await browser.newContext();
    const page = await context.newPage();
    const log = [];
    page.on("console", (m) => log.push(`${since()} ${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => log.push(`${since()} pageerror: ${e.message}`));
    await page.goto(`${node.sluice.base}/?room=${ROOM}&name=page${i}&autojoin=1`);
    pages.push({ page, log, name: `page${i}`, entry: node.id });
    // The first join places the room: wait for it before the others join.
    if (i === 0) await page.waitForFunction(() => window.sluice.state.me, null, { timeout: 15000 });
  }

  // One sample of a page: its welcomes so far (which SFU connection the stats are of) and, per
  // receive slot, who is on it and what it received.
  const sample = async (p) => {
    const s = await p.page.evaluate(async () => {
      const st = window.sluice.state;
      const stats = await window.sluice.stats();
      const slots = {};
      for (const [mid, x] of Object.entries(stats)) {
        slots[mid] = { who: st.slots.get(mid) || null, packets: x.packetsReceived, bytes: x.bytesReceived };
      }
      return { me: st.me && st.me.id, welcomes: window.sluice.signaling.welcomes, slots };
    });
    return { ...s, at: Date.now() };
  };
  // Who a page hears: the ids on slots whose packets grew from `before` to `now` (same connection).
  const heard = (before, now) => {
    const out = new Set();
    if (!before || before.welcomes !== now.welcomes) return out;
    for (const [mid, x] of Object.entries(now.slots)) {
      const b = before.slots[mid];
      if (x.who && b && b.who === x.who && x.packets > b.packets) out.add(x.who);
    }
    return out;
  };

  // Packets received per SFU connection of a page (the current one and any replaced one not closed
  // yet), keyed by a tag the driver gives each connection.
  const received = (p) => p.page.evaluate(async () => {
    const st = window.sluice.state;
    const out = {};
    for (const sfu of [st.sfu, ...st.retired]) {
      if (!sfu) continue;
      sfu.tag = sfu.tag || String(Math.random());
      let n = 0;
      (await sfu.pc.getStats()).forEach((x) => { if (x.type === "inbound-rtp") n += x.packetsReceived; });
      out[sfu.tag] = n;
    }
    return out;
  });
  // Per page, the longest time over `ms` in which none of its SFU connections received a packet
  // (only the silence the samples prove, as chromium_room.mjs measures it).
  const watchSilence = async (which, ms) => {
    const watch = which.map(() => ({ last: null, quietFrom: 0, gap: 0 }));
    const end = Date.now() + ms;
    while (Date.now() < end) {
      await Promise.all(which.map(async (p, k) => {
        const start = Date.now();
        const now = await received(p);
        const w = watch[k];
        const grew = w.last && Object.entries(now).some(([t, n]) => n > (w.last[t] ?? 0));
        if (w.last && !grew) w.gap = Math.max(w.gap, start - w.quietFrom);
        else w.quietFrom = Date.now();
        w.last = now;
      }));
      await sleep(100);
    }
    return watch.map((w) => w.gap);
  };

  // Everyone hears everyone (each page over half a second, so packets had time to grow).
  const ids = [];
  const hearsAll = async () => {
    const a = await Promise.all(pages.map(sample));
    if (a.some((s) => !s.me)) return false;
    await sleep(500);
    const b = await Promise.all(pages.map(sample));
    ids.splice(0, ids.length, ...b.map((s) => s.me));
    return b.every((s, i) => {
      const h = heard(a[i], s);
      return ids.every((id) => id === s.me || h.has(id));
    });
  };
  result.ready = Boolean(await until(hearsAll, 30000, 200));
  result.ready_ms = since();
  result.ids = ids;
  const signalingOf = (p) => p.page.evaluate(() => {
    const s = window.sluice.signaling;
    return { url: s.url.split("/v1/")[0], redirects: s.redirects.map((r) => r.to), welcomes: s.welcomes,
             reconnects: s.reconnects.map((r) => r.to), entry_urls: s.entryUrls, cluster: s.cluster };
  });
  result.before = await room(nodes[1]);
  result.signaling_before = await Promise.all(pages.map(signalingOf));

  const owner = nodes.find((n) => n.id === result.before.node);
  if (result.ready && owner) {
    // The room's node dies without a word.
    const welcomesAtKill = (await Promise.all(pages.map(sample))).map((s) => s.welcomes);
    const killedAt = Date.now();
    await owner.sluice.kill();
    result.killed = owner.id;
    const back = pages.map(() => ({}));  // per page: other id -> ms after the kill
    const last = pages.map(() => null);
    const others = (i) => ids.filter((id) => id !== ids[i]);
    while (Date.now() - killedAt < 20000 && !back.every((b, i) => others(i).every((o) => o in b))) {
      const now = await Promise.all(pages.map(sample));
      for (const [i, s] of now.entries()) {
        // Only the new connection counts: stats after a new welcome, compared within it.
        if (s.welcomes > welcomesAtKill[i]) {
          for (const who of heard(last[i], s)) if (!(who in back[i])) back[i][who] = s.at - killedAt;
        }
        last[i] = s;
      }
      await sleep(100);
    }
    result.back = back.every((b, i) => others(i).every((o) => o in b));
    result.gaps_ms = back.map((b, i) => (others(i).every((o) => o in b) ? Math.max(...Object.values(b)) : null));
    result.back_ms = back;
    const alive = nodes.find((n) => n !== owner);
    result.after = await room(alive);
    result.signaling_after = await Promise.all(pages.map(signalingOf));
    await sleep(2500);  // past the close of the old connections (2 s after the new ones were made)
    result.final = await Promise.all(pages.map(async (p) => {
      const a = await sample(p);
      await sleep(500);
      const b = await sample(p);
      const conn = await p.page.evaluate(() => {
        const st = window.sluice.state;
        return { connection: st.sfu ? st.sfu.pc.connectionState : "none", retired: st.retired.size,
                 members: [...st.members.values()].map((m) => m.name).sort(),
                 shown: document.getElementById("conn").textContent };
      });
      return { name: p.name, hears: [...heard(a, b)].sort(), ...conn };
    }));

    // Then the new owner is drained through the third node: it redirects every page mid-session
    // to the node the room moves to, and keeps forwarding a while (make-before-break); each page
    // opens its new connection before it closes the old one, so nobody should hear a gap.
    const owner2 = nodes.find((n) => n.id === result.after.node);
    const via = nodes.find((n) => n !== owner && n !== owner2);
    const dead = async () => {
      const listed = JSON.parse(await via.sluice.api("GET", "/v1/nodes")).nodes.map((x) => x.id);
      return !listed.includes(owner.id);
    };
    if (owner2 && via && await until(dead, 6000)) {
      const welcomes = (await Promise.all(pages.map(sample))).map((s) => s.welcomes);
      await via.sluice.api("POST", `/v1/nodes/${owner2.id}/drain`);
      const drainedAt = Date.now();
      result.drain = { from: owner2.id, via: via.id, silence_ms: await watchSilence(pages, 6000) };
      result.drain.room = await room(via);
      result.drain.new_welcomes = (await Promise.all(pages.map(sample))).map((s, i) => s.welcomes - welcomes[i]);
      result.drain.signaling = await Promise.all(pages.map(signalingOf));
      result.drain.retired = await Promise.all(pages.map((p) => p.page.evaluate(() => window.sluice.state.retired.size)));
      const a = await Promise.all(pages.map(sample));
      await sleep(500);
      const b = await Promise.all(pages.map(sample));
      result.drain.hears = b.map((s, i) => [...heard(a[i], s)].sort());
      result.drain.ms = Date.now() - drainedAt;
    }
  }
  result.pages = pages.map((p) => ({ name: p.name, entry: p.entry, log: p.log.slice(-20) }));
  // The room goes (so the nodes have nothing to move when they stop).
  await nodes.find((n) => n !== owner).sluice.api("DELETE", `/v1/rooms/${ROOM}`).catch(() => {});
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  if (browser) await browser.close().catch(() => {});
  result.server_exit = {};
  result.server_log = {};
  await Promise.all(nodes.map(async (n) => {
    if (n.id !== result.killed) result.server_exit[n.id] = await n.sluice.stop();
    result.server_log[n.id] = n.sluice.log().split("\n").filter((l) => !l.includes("DEBUG")).slice(-25).join("\n");
  }));
  for (const n of nodes) await n.sluice.kill();
  if (redis) redis.kill("SIGKILL");
  result.ms = since();
}
console.log(JSON.stringify(result));
process.exit(result.error ? 1 : 0);

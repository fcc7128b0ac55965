"""aiortc clients in a sluice cluster: joining through different nodes, redirected to the room's
node, and back after that node is killed (docs/cluster.md; DESIGN.md, "Cluster").

Usage: aiortc_cluster.py '<json>' with {"nodes": [{"base": "http://…", "pid": 123, "region": "eu"}, …],
"key": API key, "room": name, and at most one of "kill": true, "stop": seconds, "drain": true,
"outage": marker path}

1. The room is created through node 1 (an SFU room). Member i gets its token from node i (member 0
   as a client in node 2's region, so the room is placed there), and opens signaling on node i: a
   node that does not serve the room answers `redirect`, which the client follows.
2. Once every member decodes every other's tone, the room's node is killed (SIGKILL) when "kill"
   is set: the clients' sockets close without `bye`; each retries its last URL once, then its entry
   node, then the `entry_urls` of its last `welcome`, backing off from 250 ms; the node it reaches
   places the room again and redirects it; it offers again.

   With "stop" the room's node is paused (SIGSTOP) instead, for that many seconds (longer than its
   record's expiry): the clients' pings time out, they reconnect and the room moves; then the node
   is resumed (SIGCONT) and the clients are watched for 4 s more (it must fence itself: nobody is
   disturbed, nobody hears the room twice).
3. With "drain" the room's node is drained through another node's API, then the node it moved to
   gets SIGTERM: each time every member is redirected to the new owner and opens its new
   connection before it closes the old one (make-before-break); the longest silence is measured.
4. With "outage" the script writes `<marker>.ready` once everyone hears everyone and watches the
   audio until the test (which kills Redis and starts it again, empty) writes `<marker>.healed`;
   then it joins a fourth participant through another node and creates and joins a second room,
   to show that placement works again.

Prints one JSON object: the room before and after, per member its redirects and, after the kill or
pause, the gap (seconds from it until the member decoded 3 frames of every other member again);
while watched, per member the longest silence of any other member and how many `welcome`s it got.
"""

import asyncio
import json
import os
import signal
import sys
import time

import aioice.ice
import websockets
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from aiortc_hybrid import Tone, api

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

T0 = time.monotonic()
BACK_FRAMES = 3  # frames of a member that count as hearing it again


def ws_base(http):
    return "ws" + http[len("http") :]


class Member:
    """One client: signaling that follows redirects and reconnects, and one SFU connection."""

    def __init__(self, entry, key, room, name, hz, region=None, role=None):
        body = {"name": name}
        if region:
            body["region"] = region
        if role:
            body["role"] = role
        self.grant = api(entry, key, "POST", f"/v1/rooms/{room}/participants", body)
        self.id = self.grant["id"]
        self.token = self.grant["token"]
        self.entry = entry
        self.hz = hz
        self.entry_urls = []
        self.url = f"{ws_base(entry)}/v1/signal?token={self.token}"
        self.pc = None
        self.ws = None
        self.slots = {}
        self.frames = {}  # participant -> frames decoded
        self.since = None  # the kill: (time, frames per participant then)
        self.back = {}  # participant -> seconds after the kill its BACK_FRAMES-th frame came
        self.redirects = []
        self.watch = None  # since when silences are measured
        self.last = {}  # participant -> when its last frame came
        self.silence = {}  # participant -> longest gap between its frames while watched
        self.welcomes = 0
        self.log = []  # (seconds since start, what happened) on the signaling path
        self.errors = []
        self.bye = None  # the reason of the `bye` that ended its session
        self.peer_muted = []  # (participant, muted) of each `peer_muted`
        self.roster = {}  # participant -> muted, as welcome, peer_joined, peer_left and peer_muted tell
        self.done = False

    def consume(self, track, mid, slots):
        async def run():
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                who = slots.get(mid)
                if frame.samples <= 0 or who is None:
                    continue
                self.frames[who] = self.frames.get(who, 0) + 1
                now = time.monotonic()
                if self.watch is not None:
                    prev = max(self.last.get(who, self.watch), self.watch)
                    self.silence[who] = max(self.silence.get(who, 0.0), now - prev)
                self.last[who] = now
                if self.since and who not in self.back:
                    at, before = self.since
                    if self.frames[who] - before.get(who, 0) >= BACK_FRAMES and self.pc_started > at:
                        self.back[who] = time.monotonic() - at

        asyncio.ensure_future(run())

    async def offer(self, audio_slots):
        old, self.pc = self.pc, RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if old:
            # Make-before-break: the old connection (to a node that moved the room, or is gone)
            # carries what it still can until the new one is up; closed in the background, as
            # closing one to a node that is gone can take seconds.
            asyncio.ensure_future(close_later(old, 2.0))
        self.pc_started = time.monotonic()
        slots = self.slots = {}  # this connection's slots: mid -> participant
        pc = self.pc
        if self.hz is not None:  # a listener (no tone) only receives
            pc.addTransceiver(Tone(self.hz), direction="sendrecv")
        for _ in range(audio_slots):
            pc.addTransceiver("audio", direction="recvonly")

        @pc.on("track")
        def on_track(track):
            mid = next((t.mid for t in pc.getTransceivers() if t.receiver.track is track), "?")
            self.consume(track, mid, slots)

        await pc.setLocalDescription(await pc.createOffer())
        await self.ws.send(json.dumps({"type": "offer", "sdp": pc.localDescription.sdp}))

    def note(self, what):
        self.log.append((round(time.monotonic() - T0, 2), what))

    async def session(self, url):
        """One signaling socket; returns ("redirect", url), ("bye", reason) or ("closed", None)."""
        self.note("connect " + url.split("/v1/")[0])
        async with websockets.connect(url, max_size=2**20, open_timeout=2, ping_interval=1, ping_timeout=2, close_timeout=1) as ws:
            self.ws = ws
            try:
                async for raw in ws:
                    msg = json.loads(raw)
                    t = msg["type"]
                    if t == "redirect":
                        return ("redirect", msg["url"])
                    if t == "bye":
                        return ("bye", msg["reason"])
                    if t == "welcome":
                        self.note("welcome")
                        self.welcomes += 1
                        self.entry_urls = msg.get("entry_urls", [])
                        self.roster = {p["id"]: p["muted"] for p in msg.get("peers", [])}
                        await self.offer(msg["audio_slots"])
                    elif t == "answer" and self.pc:
                        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="answer"))
                    elif t == "slots":
                        self.slots.clear()
                        self.slots.update({s["mid"]: s["participant"] for s in msg["slots"]})
                    elif t == "peer_joined":
                        p = msg["participant"]
                        self.roster[p["id"]] = p["muted"]
                    elif t == "peer_left":
                        self.roster.pop(msg["participant"], None)
                    elif t == "peer_muted":
                        self.peer_muted.append((msg["participant"], msg["muted"]))
                        if msg["participant"] in self.roster:
                            self.roster[msg["participant"]] = msg["muted"]
                    elif t == "error":
                        self.errors.append(msg)
            except websockets.ConnectionClosed:
                pass
        self.note("closed")
        return ("closed", None)

    def candidates(self):
        """Where to reconnect after a socket closed without bye: the last URL once, the entry
        node, then the other nodes the last welcome named (the node that failed skipped once)."""
        yield self.url
        failed = self.url.split("/v1/")[0]
        first = True
        while True:
            for base in [self.entry] + self.entry_urls:
                # Not straight back to the node that just failed us (the entry may be it).
                if first and ws_base(base) == failed:
                    continue
                yield f"{ws_base(base)}/v1/signal?token={self.token}"
            first = False

    async def run(self):
        url, backoff = self.url, 0.25
        tries = None
        while not self.done:
            try:
                how, arg = await self.session(url)
            except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as e:
                how, arg = ("failed", repr(e))
                self.note("failed " + type(e).__name__)
            if how == "redirect":
                self.redirects.append(arg.split("/v1/")[0])
                url, self.url, tries, backoff = arg, arg, None, 0.25
                continue
            if how == "bye":
                self.bye = arg
                return
            if self.done:
                return
            if how == "closed" and self.welcomes:
                tries = None  # a socket that carried a session: start the retry order again
            if tries is None:
                tries = self.candidates()
                url = next(tries)
                if how == "closed":
                    continue  # the last URL, at once
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
            url = next(tries)

    def hears(self, others, n=25):
        return all(self.frames.get(o, 0) >= n for o in others)

    def start_watch(self):
        self.watch, self.silence = time.monotonic(), {}

    def longest_silence(self, others):
        """The longest any other member was silent since start_watch, up to now."""
        now = time.monotonic()
        return max(max(self.silence.get(o, 0.0), now - max(self.last.get(o, self.watch), self.watch)) for o in others)


async def close_all(members, runners):
    """Ends every member: its socket closed, the runners cancelled, its connection closed."""
    for m in members:
        m.done = True
        if m.ws:
            try:
                await m.ws.close()
            except Exception:
                pass
    for r in runners:
        r.cancel()
    for m in members:
        if m.pc:
            try:
                await asyncio.wait_for(m.pc.close(), 2)
            except Exception:
                pass


async def close_later(pc, after):
    await asyncio.sleep(after)
    await pc.close()


async def wait_until(cond, timeout):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return True
        await asyncio.sleep(0.1)
    return False


async def main():
    cfg = json.loads(sys.argv[1])
    nodes, key, room = cfg["nodes"], cfg["key"], cfg["room"]
    api(nodes[0]["base"], key, "POST", "/v1/rooms", {"name": room, "mode": "sfu"})
    members = [
        Member(nodes[i]["base"], key, room, f"m{i}", 300 + 150 * i, region=nodes[1]["region"] if i == 0 else None)
        for i in range(len(nodes))
    ]
    out = {"ids": [m.id for m in members], "signal_urls": [m.grant["signal_url"].split("/v1/")[0] for m in members]}
    runners = [asyncio.ensure_future(m.run()) for m in members]
    try:
        ids = [m.id for m in members]
        others = {m.id: [i for i in ids if i != m.id] for m in members}
        out["ready"] = await wait_until(lambda: all(m.hears(others[m.id]) for m in members), 40)
        out["before"] = api(nodes[2]["base"], key, "GET", f"/v1/rooms/{room}")
        out["redirects"] = {m.id: list(m.redirects) for m in members}
        owner = out["before"].get("node")
        victim = next((n for n in nodes if n["id"] == owner), None)
        if (cfg.get("kill") or cfg.get("stop")) and out["ready"] and victim:
            now = time.monotonic()
            for m in members:
                m.since = (now, dict(m.frames))
            os.kill(victim["pid"], signal.SIGSTOP if cfg.get("stop") else signal.SIGKILL)
            out["hit_at"] = round(now - T0, 2)
            back = await wait_until(lambda: all(len(m.back) == len(others[m.id]) for m in members), 25)
            out["back"] = back
            out["gaps"] = {m.id: max(m.back.values()) if len(m.back) == len(others[m.id]) else None for m in members}
            alive = next(n for n in nodes if n["id"] != owner)
            out["after"] = api(alive["base"], key, "GET", f"/v1/rooms/{room}")
            out["redirects_after"] = {m.id: list(m.redirects) for m in members}
            if cfg.get("stop"):
                await asyncio.sleep(max(0.0, cfg["stop"] - (time.monotonic() - now)))
                welcomes = {m.id: m.welcomes for m in members}
                for m in members:
                    m.start_watch()
                os.kill(victim["pid"], signal.SIGCONT)
                await asyncio.sleep(4)
                out["resumed"] = {
                    "silence": {m.id: m.longest_silence(others[m.id]) for m in members},
                    "new_welcomes": {m.id: m.welcomes - welcomes[m.id] for m in members},
                    "room": api(victim["base"], key, "GET", f"/v1/rooms/{room}"),
                    "rooms": [api(n["base"], key, "GET", f"/v1/rooms/{room}") for n in nodes],
                }
        if cfg.get("drain") and out["ready"] and victim:
            # Drained through another node (the API), then the new owner gets SIGTERM: each time
            # the room moves and every member is redirected.
            out["drains"] = []
            for how in ("api", "sigterm"):
                cur = api(nodes[0]["base"], key, "GET", f"/v1/rooms/{room}")["node"]
                node = next(n for n in nodes if n["id"] == cur)
                via = next(n for n in nodes if n["id"] != cur and n["id"] != owner) if how == "sigterm" else next(n for n in nodes if n["id"] != cur)
                welcomes = {m.id: m.welcomes for m in members}
                now = time.monotonic()
                for m in members:
                    m.start_watch()
                    m.since, m.back = (now, dict(m.frames)), {}
                if how == "api":
                    api(via["base"], key, "POST", f"/v1/nodes/{cur}/drain")
                else:
                    os.kill(node["pid"], signal.SIGTERM)
                back = await wait_until(lambda: all(len(m.back) == len(others[m.id]) for m in members), 20)
                await asyncio.sleep(2.5)  # past the old connections' close
                out["drains"].append({
                    "how": how,
                    "from": cur,
                    "back": back,
                    "new_welcomes": {m.id: m.welcomes - welcomes[m.id] for m in members},
                    "silence": {m.id: m.longest_silence(others[m.id]) for m in members},
                    "room": api(via["base"], key, "GET", f"/v1/rooms/{room}"),
                })
        if cfg.get("outage") and out["ready"]:
            marker = cfg["outage"]
            welcomes = {m.id: m.welcomes for m in members}
            for m in members:
                m.start_watch()
            open(marker + ".ready", "w").close()
            healed = await wait_until(lambda: os.path.exists(marker + ".healed"), 30)
            out["outage"] = {
                "healed": healed,
                "silence": {m.id: m.longest_silence(others[m.id]) for m in members},
                "new_welcomes": {m.id: m.welcomes - welcomes[m.id] for m in members},
                "rooms": [api(n["base"], key, "GET", f"/v1/rooms/{room}") for n in nodes],
                # Placement works again: a fourth member through another node is sent to the
                # owner, and a new room is placed.
                "late": api(nodes[2]["base"], key, "POST", f"/v1/rooms/{room}/participants", {"name": "late"}),
                "new_room": api(nodes[1]["base"], key, "POST", "/v1/rooms", {"name": room + "-2", "mode": "sfu"}),
                "new_join": api(nodes[1]["base"], key, "POST", f"/v1/rooms/{room}-2/participants", {"name": "x"}),
            }
        out["frames"] = {m.id: m.frames for m in members}
    finally:
        out["errors"] = {m.id: m.errors for m in members if m.errors}
        out["log"] = {m.id: m.log for m in members}
        for m in members:
            m.done = True
            if m.pc:
                await m.pc.close()
        for r in runners:
            r.cancel()
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())

"""aiortc clients in a hybrid (`auto`) sluice room: a P2P mesh that grows onto the SFU and back.

Usage: aiortc_hybrid.py <http base> <api key> <room> <cooldown seconds>

1. Eight clients join an `auto` room (p2p_max 8): they form a full mesh through peer_offer/peer_answer
   (the member with the smaller id offers) and each decodes the tone of the seven others directly.
2. A ninth joins: the room switches to the SFU; every member sends an offer to sluice, and closes its
   mesh connections only once the SFU connection carries audio. Each decodes the eight others through
   its speaker slots (named by `slots`).
3. Three leave; after the cooldown the room returns to P2P: the six connect to each other again and
   close their SFU connection once the mesh carries audio.

Prints one JSON object with, per phase, the frames each client decoded from each other member (by
participant id) and how (mesh or sfu), the modes seen, and the server's packet counter.
"""

import asyncio
import fractions
import json
import math
import sys
import time

import aioice.ice
import requests
import websockets
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from av import AudioFrame

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

RATE = 48000
SAMPLES = 960  # 20 ms
CARRY_TIMEOUT = 8.0  # close the old connections after this even if the new ones stay silent


class Tone(AudioStreamTrack):
    """A sine tone, 20 ms per frame, from one precomputed second (integer hz: it loops cleanly)."""

    cache = {}

    def __init__(self, hz):
        super().__init__()
        if hz not in Tone.cache:
            pcm = bytearray()
            for i in range(RATE):
                pcm += int(8000 * math.sin(2 * math.pi * hz * i / RATE)).to_bytes(2, "little", signed=True)
            Tone.cache[hz] = bytes(pcm)
        self.pcm = Tone.cache[hz]
        self.pts = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.pts / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        at = (self.pts % RATE) * 2
        frame = AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        frame.planes[0].update(self.pcm[at : at + SAMPLES * 2])
        frame.sample_rate = RATE
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, RATE)
        self.pts += SAMPLES
        return frame


def api(base, key, method, path, body=None):
    r = requests.request(method, base + path, headers={"authorization": f"Bearer {key}"}, json=body, timeout=5)
    r.raise_for_status()
    return r.json() if r.content else None


class Member:
    """One client: the signaling socket, its mesh connections and its SFU connection."""

    def __init__(self, base, key, room, name, hz):
        self.grant = api(base, key, "POST", f"/v1/rooms/{room}/participants", {"name": name})
        self.id = self.grant["id"]
        self.name = name
        self.hz = hz
        self.ws = None
        self.mode = None
        self.modes = []
        self.others = set()
        self.mesh = {}  # peer id -> RTCPeerConnection
        self.sfu = None
        self.slots = {}  # mid -> participant
        self.audio_slots = 0
        self.frames = {}  # (via, participant) -> frames decoded
        self.tasks = []
        self.errors = []
        self.on_frame = None  # optional hook: called with (via, participant) and each decoded frame

    # ------------------------------------------------------------------ media
    def consume(self, track, via, who):
        async def run():
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                if frame.samples > 0:
                    key = (via, who() if callable(who) else who)
                    self.frames[key] = self.frames.get(key, 0) + 1
                    if self.on_frame:
                        self.on_frame(key, frame)

        self.tasks.append(asyncio.ensure_future(run()))

    def mesh_pc(self, peer):
        pc = self.mesh.get(peer)
        if pc is None:
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTrack(Tone(self.hz))
            pc.on("track", lambda track: self.consume(track, "mesh", peer))
            self.mesh[peer] = pc
        return pc

    async def call(self, peer):
        pc = self.mesh_pc(peer)
        await pc.setLocalDescription(await pc.createOffer())
        await self.send({"type": "peer_offer", "to": peer, "sdp": pc.localDescription.sdp})

    async def close_peer(self, peer):
        pc = self.mesh.pop(peer, None)
        if pc:
            await pc.close()

    async def connect_sfu(self):
        if self.sfu:
            return
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.sfu = pc
        pc.addTransceiver(Tone(self.hz), direction="sendrecv")
        for _ in range(self.audio_slots):
            pc.addTransceiver("audio", direction="recvonly")

        @pc.on("track")
        def on_track(track):
            mid = next((t.mid for t in pc.getTransceivers() if t.receiver.track is track), "?")
            self.consume(track, "sfu", lambda: self.slots.get(mid))

        await pc.setLocalDescription(await pc.createOffer())
        await self.send({"type": "offer", "sdp": pc.localDescription.sdp})

    async def close_sfu(self):
        pc, self.sfu = self.sfu, None
        if pc:
            await pc.close()

    def heard(self, via):
        return sum(n for (v, _), n in self.frames.items() if v == via)

    async def when_carrying(self, mode, ready, done):
        start = time.monotonic()
        while self.mode == mode and time.monotonic() - start < CARRY_TIMEOUT:
            if ready():
                break
            await asyncio.sleep(0.2)
        if self.mode == mode:
            await done()

    async def set_mode(self, mode):
        first = self.mode is None
        self.mode = mode
        self.modes.append(mode)
        if mode == "sfu":
            before = self.heard("sfu")
            await self.connect_sfu()
            if not first:

                async def close_mesh():
                    for peer in list(self.mesh):
                        await self.close_peer(peer)

                self.tasks.append(
                    asyncio.ensure_future(self.when_carrying("sfu", lambda: self.heard("sfu") > before + 25, close_mesh))
                )
        else:
            for peer in sorted(self.others):
                if self.id < peer and peer not in self.mesh:
                    await self.call(peer)
            if not first:
                base = {p: self.frames.get(("mesh", p), 0) for p in self.others}

                def mesh_ready():
                    return all(self.frames.get(("mesh", p), 0) > base.get(p, 0) + 10 for p in self.others)

                self.tasks.append(asyncio.ensure_future(self.when_carrying("p2p", mesh_ready, self.close_sfu)))

    # -------------------------------------------------------------- signaling
    async def send(self, msg):
        await self.ws.send(json.dumps(msg))

    async def on_message(self, msg):
        t = msg["type"]
        if t == "welcome":
            self.audio_slots = msg["audio_slots"]
            self.others = {p["id"] for p in msg["peers"]}
            await self.set_mode(msg["mode"])
        elif t == "mode":
            await self.set_mode(msg["mode"])
        elif t == "peer_joined":
            peer = msg["participant"]["id"]
            self.others.add(peer)
            if self.mode == "p2p" and self.id < peer:
                await self.call(peer)
        elif t == "peer_left":
            self.others.discard(msg["participant"])
            await self.close_peer(msg["participant"])
        elif t == "peer_offer" and self.mode == "p2p":
            pc = self.mesh_pc(msg["from"])
            await pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await self.send({"type": "peer_answer", "to": msg["from"], "sdp": pc.localDescription.sdp})
        elif t == "peer_answer" and msg["from"] in self.mesh:
            await self.mesh[msg["from"]].setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="answer"))
        elif t == "answer" and self.sfu:
            await self.sfu.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="answer"))
        elif t == "slots":
            self.slots = {s["mid"]: s["participant"] for s in msg["slots"]}
        elif t == "error":
            self.errors.append(msg)

    async def run(self):
        async with websockets.connect(self.grant["signal_url"], max_size=2**20) as ws:
            self.ws = ws
            try:
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg["type"] == "bye":
                        break
                    try:
                        await self.on_message(msg)
                    except Exception as e:  # report, keep the socket
                        self.errors.append(f"{msg['type']}: {e!r}")
            except websockets.ConnectionClosed:
                pass

    async def leave(self):
        await self.send({"type": "leave"})
        await self.close_sfu()
        for peer in list(self.mesh):
            await self.close_peer(peer)

    async def close(self):
        for t in self.tasks:
            t.cancel()
        await self.close_sfu()
        for peer in list(self.mesh):
            await self.close_peer(peer)

    def snapshot(self):
        return dict(self.frames)


def delta(after, before):
    """Frames per (via, participant) decoded between two snapshots, as {via: {participant: n}}."""
    out = {}
    for (via, who), n in after.items():
        d = n - before.get((via, who), 0)
        if d > 0 and who is not None:
            out.setdefault(via, {})[who] = d
    return out


async def wait_until(cond, timeout):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return True
        await asyncio.sleep(0.25)
    return False


def metric(base, name):
    text = requests.get(base + "/metrics", timeout=5).text
    return sum(int(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + " ") or l.startswith(name + "{"))


def packets_in(base):
    text = requests.get(base + "/metrics", timeout=5).text
    return sum(int(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("sluice_packets_in_total"))


async def measure(members, seconds):
    before = {m.id: m.snapshot() for m in members}
    await asyncio.sleep(seconds)
    return {m.id: delta(m.snapshot(), before[m.id]) for m in members}


def connected_mesh(m, n):
    return len(m.mesh) == n and all(pc.connectionState == "connected" for pc in m.mesh.values())


async def main():
    base, key, room, cooldown = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    api(base, key, "POST", "/v1/rooms", {"name": room, "mode": "auto", "p2p_max": 8, "cooldown_s": cooldown})
    out = {"phases": {}}
    members = [Member(base, key, room, f"m{i}", 220 + 55 * i) for i in range(9)]
    runners = []
    try:
        # 1. Eight: a mesh.
        for m in members[:8]:
            runners.append(asyncio.ensure_future(m.run()))
            await asyncio.sleep(0.2)
        mesh_up = await wait_until(lambda: all(connected_mesh(m, 7) for m in members[:8]), 40)
        await asyncio.sleep(1)
        pin = packets_in(base)
        # One Python process decodes every stream (56 here, 72 on the SFU): it, not sluice, is the
        # limit on a slow machine, so the windows are long enough for > 1 s of audio per stream there.
        heard = await measure(members[:8], 6)
        out["phases"]["mesh8"] = {
            "ready": mesh_up,
            "heard": heard,
            "server_packets_in": [pin, packets_in(base)],
            "modes": {m.id: m.modes[:] for m in members[:8]},
        }

        # 2. The ninth: everyone onto the SFU.
        runners.append(asyncio.ensure_future(members[8].run()))
        on_sfu = await wait_until(
            lambda: all(m.mode == "sfu" and not m.mesh and m.sfu and m.sfu.connectionState == "connected" for m in members),
            40,
        )
        await asyncio.sleep(1)
        heard = await measure(members, 8)
        out["phases"]["sfu9"] = {
            "ready": on_sfu,
            "heard": heard,
            "modes": {m.id: m.modes[:] for m in members},
            "room": api(base, key, "GET", f"/v1/rooms/{room}"),
        }

        # 3. Three leave: after the cooldown, back to a mesh of six.
        for m in members[6:]:
            await m.leave()
        left_at = time.monotonic()
        stay = members[:6]
        back = await wait_until(
            lambda: all(m.mode == "p2p" and connected_mesh(m, 5) and m.sfu is None for m in stay), cooldown + 40
        )
        switched_after = time.monotonic() - left_at
        await asyncio.sleep(1)
        pin = packets_in(base)
        heard = await measure(stay, 4)
        # The server drops the SFU transports left from before the switch back, without waiting for ICE
        # consent to expire (30 s).
        cleared = await wait_until(lambda: metric(base, "sluice_media_sessions") == 0, 20)
        out["phases"]["mesh6_cleanup"] = {"cleared": cleared, "after_s": time.monotonic() - left_at}
        out["phases"]["mesh6"] = {
            "ready": back,
            "after_s": switched_after,
            "heard": heard,
            "server_packets_in": [pin, packets_in(base)],
            "modes": {m.id: m.modes[:] for m in stay},
            "room": api(base, key, "GET", f"/v1/rooms/{room}"),
        }
    finally:
        out["errors"] = {m.id: m.errors for m in members if m.errors}
        out["ids"] = [m.id for m in members]
        for m in members:
            await m.close()
        for r in runners:
            r.cancel()
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())

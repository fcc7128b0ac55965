"""Real WebRTC clients (aiortc) in one sluice room.

Usage: aiortc_room.py <http base> <api key> <room> <clients> [seconds] [saboteurs] [listeners] [learn]
                     [--existing-room] [--epoch=<unix time>]

With saboteurs=1, two more clients join: one whose offer carries a wrong DTLS fingerprint and one
that uses a wrong ICE password; both must be refused while the others keep hearing each other. Each
listener joins with role `listener` and sends a tone anyway: nobody may hear it.

With `learn` as the last argument the room instead holds three speakers whose SSRCs sluice must
learn or refuse: client0 offers as usual, client1 offers without any `a=ssrc` line (sluice learns its
SSRC from its first packet), and a thief offers without `a=ssrc` and sends with client0's SSRC
(sluice must forward none of it, and client0 must not be affected).

Creates the room and its participants over REST, connects each client's signaling socket, sends an
offer with one microphone (a generated tone) and two receive slots, applies the answer, and counts the
audio frames each client decodes per slot. Prints one JSON object:
{"clients": [{"name", "id", "slots": {mid: frames}, "state", "announced": {mid: participant},
"speakers_seen": [ids]}], "ok": bool}.

With `--existing-room` the room is not created (another driver made it, e.g. tests/clients/gst_room.py).
With `--epoch=T` (a unix time shared with other clients) each client stays until T + seconds instead of
seconds after its answer, and its result also has "connected_at" (seconds since T), "errors"
(signaling `error`/`bye` messages, with their time) and "heard": {participant: {"frames": [per second
since T, decoded frames with sound], "hz": [per second, the tone's frequency from zero crossings]}},
the participant being the one the latest `slots` put on the receiving mid.
"""

import asyncio
import fractions
import json
import math
import sys

import aioice.ice
import aiortc
import requests
import websockets
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from av import AudioFrame

# aioice skips loopback on purpose; everything in this test stays on 127.0.0.1.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

RATE = 48000
FINISH = None  # every client reaches it before any leaves (main sets it)
SAMPLES = 960  # 20 ms
EPOCH = None  # --epoch: the shared start, unix time (main sets it)


class Tone(AudioStreamTrack):
    """A sine tone, 20 ms per frame."""

    def __init__(self, hz):
        super().__init__()
        self.hz = hz
        self.pts = 0

    async def recv(self):
        await asyncio.sleep(0.02)
        frame = AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        data = bytearray(SAMPLES * 2)
        for i in range(SAMPLES):
            v = int(8000 * math.sin(2 * math.pi * self.hz * (self.pts + i) / RATE))
            data[2 * i : 2 * i + 2] = v.to_bytes(2, "little", signed=True)
        frame.planes[0].update(bytes(data))
        frame.sample_rate = RATE
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, RATE)
        self.pts += SAMPLES
        return frame


import random
import re
import time
from array import array


def wrong_fingerprint(sdp):
    fake = ":".join(f"{random.randrange(256):02X}" for _ in range(32))
    return re.sub(r"a=fingerprint:sha-256 [0-9A-Fa-f:]+", f"a=fingerprint:sha-256 {fake}", sdp)


def wrong_ice_pwd(sdp):
    return re.sub(r"a=ice-pwd:\S+", "a=ice-pwd:WrongPasswordWrongPassword00", sdp)


def strip_ssrc(sdp):
    """The offer without its `a=ssrc`/`a=ssrc-group` lines, as webrtcbin sends it before its caps."""
    return "".join(l for l in sdp.splitlines(keepends=True) if not l.startswith(("a=ssrc:", "a=ssrc-group:")))


FIRST_SSRC = None  # client0's sending SSRC, for the thief (main sets the future)


def mono_s16(frame):
    """The first channel of an s16 AudioFrame, as an array of samples."""
    channels = len(frame.layout.channels)
    a = array("h")
    a.frombytes(bytes(frame.planes[0])[: frame.samples * 2 * channels])
    return a[::channels]


def tone_hz(a, rate):
    """The frequency of a clean tone in samples `a`, from their zero crossings."""
    crossings = sum(1 for i in range(1, len(a)) if (a[i - 1] < 0) != (a[i] < 0))
    return crossings * rate / (2 * len(a))


class PerSecond:
    """Decoded frames with sound (a peak of 500 or more) and tone estimates (one frame in five), per
    second since EPOCH, per remote sender."""

    def __init__(self, seconds):
        self.n = int(seconds) + 1
        self.by = {}
        self.count = 0

    def add(self, who, frame):
        sec = int(time.time() - EPOCH)
        a = mono_s16(frame)
        if not 0 <= sec < self.n or len(a) < 2 or max(abs(min(a)), max(a)) < 500:
            return
        self.count += 1
        e = self.by.setdefault(who, {"frames": [0] * self.n, "hz": [[] for _ in range(self.n)]})
        e["frames"][sec] += 1
        if self.count % 5 == 0:
            e["hz"][sec].append(tone_hz(a, frame.sample_rate))

    def result(self):
        return {
            who: {"frames": e["frames"], "hz": [round(sorted(h)[len(h) // 2]) if h else None for h in e["hz"]]}
            for who, e in self.by.items()
        }


async def run_client(base, key, room, name, hz, seconds, slots=2, sabotage=None, role="speaker"):
    r = requests.post(
        f"{base}/v1/rooms/{room}/participants",
        headers={"authorization": f"Bearer {key}"},
        json={"name": name, "role": role},
        timeout=5,
    )
    r.raise_for_status()
    grant = r.json()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    mic = pc.addTransceiver(Tone(hz), direction="sendrecv")
    if sabotage == "ssrc_thief":
        mic.sender._ssrc = await FIRST_SSRC
    elif FIRST_SSRC is not None and not FIRST_SSRC.done():
        FIRST_SSRC.set_result(mic.sender._ssrc)
    for _ in range(slots):
        pc.addTransceiver("audio", direction="recvonly")
    frames = {}
    announced = {}  # mid -> participant, from the latest `slots`
    speakers_seen = set()  # everyone `active_speakers` named
    per_second = PerSecond(seconds) if EPOCH is not None else None
    connected_at = None
    errors = []

    @pc.on("connectionstatechange")
    def on_state():
        nonlocal connected_at
        if pc.connectionState == "connected" and connected_at is None and EPOCH is not None:
            connected_at = round(time.time() - EPOCH, 2)

    @pc.on("track")
    def on_track(track):
        mid = next((t.mid for t in pc.getTransceivers() if t.receiver.track is track), "?")

        async def consume():
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                if frame.samples > 0:
                    frames[mid] = frames.get(mid, 0) + 1
                    if per_second is not None:
                        per_second.add(announced.get(mid) or f"unannounced:{mid}", frame)

        asyncio.ensure_future(consume())

    async with websockets.connect(grant["signal_url"]) as ws:
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        me = welcome["participant"]["id"]
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        if sabotage == "fingerprint":
            offer = wrong_fingerprint(offer)
        if sabotage in ("no_ssrc", "ssrc_thief"):
            offer = strip_ssrc(offer)
            assert "a=ssrc" not in offer
        await ws.send(json.dumps({"type": "offer", "sdp": offer}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if msg["type"] == "answer":
                break
            if msg["type"] == "error":
                raise RuntimeError(f"{name}: {msg}")
            if msg["type"] == "active_speakers":
                speakers_seen.update(msg["ids"])
        answer = msg["sdp"]
        if sabotage == "ice":
            answer = wrong_ice_pwd(answer)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

        async def drain():
            try:
                async for raw in ws:
                    news = json.loads(raw)
                    if news["type"] == "slots":
                        announced.clear()
                        announced.update({x["mid"]: x["participant"] for x in news["slots"]})
                    elif news["type"] == "active_speakers":
                        speakers_seen.update(news["ids"])
                    elif news["type"] in ("error", "bye") and EPOCH is not None:
                        errors.append([round(time.time() - EPOCH, 2), news])
            except Exception:
                pass

        drainer = asyncio.ensure_future(drain())
        await asyncio.sleep(seconds if EPOCH is None else max(0.0, EPOCH + seconds - time.time()))
        # What `slots` says now, before anyone leaves (a leaver's slot is announced empty again).
        final_announced = dict(announced)
        try:
            await asyncio.wait_for(FINISH.wait(), 15)
        except (asyncio.TimeoutError, asyncio.BrokenBarrierError):
            pass
        state = pc.connectionState
        if sabotage in ("fingerprint", "ice"):
            state = f"{state} (sabotaged: {sabotage})"
        drainer.cancel()
    await pc.close()
    extra = {}
    if per_second is not None:
        extra = {"connected_at": connected_at, "errors": errors, "heard": per_second.result()}
    return {
        **extra,
        "name": name,
        "role": role,
        "id": me,
        "slots": frames,
        "state": state,
        "sabotage": sabotage,
        "ssrc": mic.sender._ssrc,
        "announced": final_announced,
        "speakers_seen": sorted(speakers_seen),
    }


async def main():
    global EPOCH
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    argv = [sys.argv[0]] + [a for a in sys.argv[1:] if not a.startswith("--")]
    base, key, room, n = argv[1], argv[2], argv[3], int(argv[4])
    seconds = float(argv[5]) if len(argv) > 5 else 6.0
    saboteurs = int(argv[6]) if len(argv) > 6 else 0
    listeners = int(argv[7]) if len(argv) > 7 else 0
    for f in flags:
        if f.startswith("--epoch="):
            EPOCH = float(f.split("=", 1)[1])
    if "--existing-room" not in flags:
        r = requests.post(f"{base}/v1/rooms", headers={"authorization": f"Bearer {key}"}, json={"name": room}, timeout=5)
        r.raise_for_status()
    learn = len(argv) > 8 and argv[8] == "learn"
    if learn:
        global FIRST_SSRC
        FIRST_SSRC = asyncio.get_running_loop().create_future()
        clients = [
            run_client(base, key, room, "client0", 300, seconds),
            run_client(base, key, room, "client1", 400, seconds, sabotage="no_ssrc"),
            run_client(base, key, room, "thief", 500, seconds, sabotage="ssrc_thief"),
        ]
    else:
        clients = [run_client(base, key, room, f"client{i}", 300 + 100 * i, seconds) for i in range(n)]
    if saboteurs:
        clients.append(run_client(base, key, room, "bad-fingerprint", 900, seconds, sabotage="fingerprint"))
        clients.append(run_client(base, key, room, "bad-ice", 1000, seconds, sabotage="ice"))
    for i in range(listeners):
        # A listener sends a tone too: sluice must drop it (counted) and give it no slot.
        clients.append(run_client(base, key, room, f"listener{i}", 1100 + 100 * i, seconds, role="listener"))
    global FINISH
    FINISH = asyncio.Barrier(len(clients))
    results = await asyncio.gather(*clients)
    if learn:
        print(json.dumps({"clients": results, "aiortc": aiortc.__version__}))
        return
    good = [c for c in results if not c["sabotage"] and c["role"] == "speaker"]
    bad = [c for c in results if c["sabotage"]]
    ok = all(c["state"] == "connected" and sum(1 for v in c["slots"].values() if v > 50) >= min(2, n - 1) for c in good)
    ok = ok and all(not c["state"].startswith("connected") and not c["slots"] for c in bad)
    print(json.dumps({"clients": results, "ok": ok, "aiortc": aiortc.__version__}))


if __name__ == "__main__":
    asyncio.run(main())

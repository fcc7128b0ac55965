"""ICE reflection against sluice, with real aiortc clients (tests/hostile/media.rs).

Usage: aiortc_reflect.py <http base> <api key> <room> [seconds]

Two aiortc clients join one room: a speaker sending a tone, and the victim-to-be client A. Once A
hears the speaker, it turns attacker: from a second socket V (which never answers anything) it
sends valid nominating checks (USERNAME, USE-CANDIDATE, MESSAGE-INTEGRITY with the server's ICE
password from the answer, FINGERPRINT) every 100 ms for `seconds`, as a client that wants sluice to
aim its media at a third party would. sluice must keep sending the media to A, whose aiortc keeps
decoding it, and send V nothing but STUN (the answers to its checks and the signed
return-routability checks V never answers). Prints one JSON object:
{"frames_before", "frames_during", "v_stun", "v_media", "v_checks_from_server", "state"}.
"""

import asyncio
import json
import random
import re
import socket
import sys

import aiortc
from aioice import stun
from aiortc import RTCPeerConnection, RTCSessionDescription, RTCConfiguration
import requests
import websockets

import aiortc_room  # the same loopback setup and tone
from aiortc_room import Tone


def sdp_attr(sdp, name):
    m = re.search(rf"a={name}:(\S+)", sdp)
    return m.group(1) if m else None


async def join(base, key, room, name):
    r = requests.post(
        f"{base}/v1/rooms/{room}/participants",
        headers={"authorization": f"Bearer {key}"},
        json={"name": name},
        timeout=5,
    )
    r.raise_for_status()
    grant = r.json()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(Tone(440 if name == "speaker" else 600), direction="sendrecv")
    pc.addTransceiver("audio", direction="recvonly")
    frames = [0]

    @pc.on("track")
    def on_track(track):
        async def consume():
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                if frame.samples > 0:
                    a = aiortc_room.mono_s16(frame)
                    if len(a) > 1 and max(abs(min(a)), max(a)) >= 500:
                        frames[0] += 1

        asyncio.ensure_future(consume())

    ws = await websockets.connect(grant["signal_url"])
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    await pc.setLocalDescription(await pc.createOffer())
    await ws.send(json.dumps({"type": "offer", "sdp": pc.localDescription.sdp}))
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg["type"] == "answer":
            break
        if msg["type"] == "error":
            raise RuntimeError(f"{name}: {msg}")
    answer = msg["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def drain():
        try:
            async for _ in ws:
                pass
        except Exception:
            pass

    drainer = asyncio.ensure_future(drain())
    return pc, ws, drainer, frames, answer


async def leave(clients):
    """Closes each client `join` returned: its signaling drain, socket and peer connection."""
    for pc, ws, drainer, _, _ in clients:
        drainer.cancel()
        await ws.close()
        await pc.close()


def nominating_check(server_ufrag, client_ufrag, server_pwd):
    msg = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    msg.attributes["USERNAME"] = f"{server_ufrag}:{client_ufrag}"
    msg.attributes["PRIORITY"] = 0x7E7FFFFF
    msg.attributes["ICE-CONTROLLING"] = random.getrandbits(64)
    msg.attributes["USE-CANDIDATE"] = None
    msg.add_message_integrity(server_pwd.encode())
    msg.add_fingerprint()
    return bytes(msg)


async def main():
    base, key, room = sys.argv[1], sys.argv[2], sys.argv[3]
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
    requests.post(
        f"{base}/v1/rooms", headers={"authorization": f"Bearer {key}"}, json={"name": room}, timeout=5
    ).raise_for_status()
    speaker = await join(base, key, room, "speaker")
    a_pc, a_ws, a_drain, a_frames, a_answer = await join(base, key, room, "client-a")

    # A must hear the speaker first (ICE and DTLS done from its own socket).
    for _ in range(100):
        if a_frames[0] >= 25:
            break
        await asyncio.sleep(0.1)
    frames_before = a_frames[0]

    # The attack: valid nominating checks from V, which never answers.
    server_ufrag, server_pwd = sdp_attr(a_answer, "ice-ufrag"), sdp_attr(a_answer, "ice-pwd")
    client_ufrag = sdp_attr(a_pc.localDescription.sdp, "ice-ufrag")
    port = int(re.search(r"a=candidate:\S+ 1 udp \d+ [\d.]+ (\d+) typ host", a_answer).group(1))
    v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v.bind(("127.0.0.1", 0))
    v.setblocking(False)
    v_stun = v_media = v_checks = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        v.sendto(nominating_check(server_ufrag, client_ufrag, server_pwd), ("127.0.0.1", port))
        await asyncio.sleep(0.1)
        while True:
            try:
                data = v.recv(4096)
            except BlockingIOError:
                break
            if data and data[0] < 4:
                v_stun += 1
                if data[0] == 0 and data[1] == 1:
                    v_checks += 1  # a Binding request from sluice: the return-routability check
            else:
                v_media += 1
    frames_during = a_frames[0] - frames_before
    state = a_pc.connectionState

    await leave((speaker, (a_pc, a_ws, a_drain, a_frames, a_answer)))
    print(
        json.dumps(
            {
                "frames_before": frames_before,
                "frames_during": frames_during,
                "v_stun": v_stun,
                "v_media": v_media,
                "v_checks_from_server": v_checks,
                "state": state,
                "aiortc": aiortc.__version__,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())

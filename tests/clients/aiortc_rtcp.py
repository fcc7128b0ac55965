"""RTCP per hop with real aiortc clients, one listener behind 5 % loss (tests/rtcp_clients.rs).

Usage (inside a private network namespace, as root there: `unshare -n`):
    aiortc_rtcp.py <sluice binary> <state dir> <seconds> <loss>

Brings `lo` up, drops `loss` (e.g. 0.05) of the UDP that arrives for 127.0.0.2 (iptables, statistic
match on INPUT: the sender never sees an error), starts `sluice serve`, and joins one room with two
speakers (tones of 300 and 500 Hz, each hearing the other on one of two slots) and two listeners:
`clean` on 127.0.0.1 and `lossy` on 127.0.0.2. While they talk it polls every client's getStats():
- each sender's `remote-inbound-rtp` (what sluice's receiver reports said: fraction lost, packets
  lost, round-trip time), keeping the largest fraction lost seen;
- each receiver's `inbound-rtp` packets received next to `remote-outbound-rtp` packets sent (what
  sluice's sender reports on that slot said), read together.
Then reads `GET /v1/rooms/{room}` (each member's `link`) and `/metrics`, stops the server with SIGTERM
and prints one JSON line.
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import time

import aioice.ice
import requests
import websockets
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from aiortc_room import Tone

KEY = "rtcp-test-key-0123456789abcdefghijklmnopqrstuv"
ROOM = "rtcp"
HOST = "127.0.0.1"  # the host candidate of the client being set up (set before its offer)
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [HOST]
SETUP = asyncio.Lock()  # one client gathers at a time, so each gets its own HOST


def sh(*cmd):
    subprocess.run(cmd, check=True)


def start_server(binary, state):
    config = os.path.join(state, "sluice.toml")
    with open(config, "w") as f:
        f.write(f'http = "127.0.0.1:0"\nudp_port = 0\nworkers = 2\napi_key = "{KEY}"\n'
                f'state_dir = {json.dumps(state)}\n')
    log = open(os.path.join(state, "server.log"), "w")
    server = subprocess.Popen([binary, "serve", "--config", config], stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.time() + 20
    out = ""
    while time.time() < deadline:
        line = server.stdout.readline()
        if not line:
            break
        out += line
        m = re.search(r"listening on (http://[0-9.:]+)", line)
        if m:
            return server, m.group(1)
    raise RuntimeError(f"sluice did not start: {out}")


async def client(base, name, role, host, hz, seconds, polls):
    global HOST
    r = requests.post(f"{base}/v1/rooms/{ROOM}/participants", headers={"authorization": f"Bearer {KEY}"},
                      json={"name": name, "role": role}, timeout=5)
    r.raise_for_status()
    grant = r.json()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if hz:
        pc.addTransceiver(Tone(hz), direction="sendrecv")
    for _ in range(2):
        pc.addTransceiver("audio", direction="recvonly")

    @pc.on("track")
    def on_track(track):
        async def consume():
            while True:
                try:
                    await track.recv()
                except Exception:
                    return

        asyncio.ensure_future(consume())

    sender = {"max_fraction_lost": 0, "packets_lost": None, "rtt": None, "reports": 0}
    receivers = {}  # ssrc -> {"received", "sent", "bytes_sent"} from the same poll
    async with websockets.connect(grant["signal_url"]) as ws:
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        async with SETUP:
            HOST = host
            await pc.setLocalDescription(await pc.createOffer())
        await ws.send(json.dumps({"type": "offer", "sdp": pc.localDescription.sdp}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if msg["type"] == "answer":
                break
            if msg["type"] == "error":
                raise RuntimeError(f"{name}: {msg}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="answer"))

        async def drain():
            try:
                async for _ in ws:
                    pass
            except Exception:
                pass

        drainer = asyncio.ensure_future(drain())
        end = time.time() + seconds
        while time.time() < end:
            await asyncio.sleep(0.5)
            polls[name] = polls.get(name, 0) + 1
            for t in pc.getTransceivers():
                if t.sender.track is not None:
                    for s in (await t.sender.getStats()).values():
                        if s.type == "remote-inbound-rtp":
                            sender["reports"] += 1
                            sender["max_fraction_lost"] = max(sender["max_fraction_lost"], s.fractionLost)
                            sender["packets_lost"] = s.packetsLost
                            if s.roundTripTime is not None:
                                sender["rtt"] = s.roundTripTime
                if t.sender.track is None:
                    stats = list((await t.receiver.getStats()).values())
                    inbound = {s.ssrc: s.packetsReceived for s in stats if s.type == "inbound-rtp"}
                    for s in stats:
                        if s.type == "remote-outbound-rtp" and s.ssrc in inbound:
                            receivers[str(s.ssrc)] = {"received": inbound[s.ssrc], "sent": s.packetsSent,
                                                      "bytes_sent": s.bytesSent}
        drainer.cancel()
    state = pc.connectionState
    await pc.close()
    return {"name": name, "id": welcome["participant"]["id"], "role": role, "host": host, "state": state,
            "sender": sender if hz else None, "receivers": receivers}


async def main():
    binary, state, seconds, loss = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    sh("ip", "link", "set", "lo", "up")
    sh("iptables", "-A", "INPUT", "-i", "lo", "-p", "udp", "-d", "127.0.0.2", "-m", "statistic",
       "--mode", "random", "--probability", str(loss), "-j", "DROP")
    server, base = start_server(binary, state)
    result = {}
    try:
        r = requests.post(f"{base}/v1/rooms", headers={"authorization": f"Bearer {KEY}"},
                          json={"name": ROOM, "mode": "sfu", "last_n": 2}, timeout=5)
        r.raise_for_status()
        polls = {}
        clients = [
            client(base, "speaker0", "speaker", "127.0.0.1", 300, seconds, polls),
            client(base, "speaker1", "speaker", "127.0.0.1", 500, seconds, polls),
            client(base, "clean", "listener", "127.0.0.1", None, seconds, polls),
            client(base, "lossy", "listener", "127.0.0.2", None, seconds, polls),
        ]
        # The room and its links while everyone is still there (a second before the end).
        async def room_late():
            await asyncio.sleep(seconds - 1)
            return (requests.get(f"{base}/v1/rooms/{ROOM}", headers={"authorization": f"Bearer {KEY}"}, timeout=5).json(),
                    requests.get(f"{base}/metrics", timeout=5).text)
        *results, (room, metrics) = await asyncio.gather(*clients, room_late())
        result = {"clients": results, "room": room, "metrics": metrics, "polls": polls}
        result["dropped_by_iptables"] = subprocess.run(["iptables", "-L", "INPUT", "-n", "-v", "-x"],
                                                       capture_output=True, text=True).stdout
    except Exception as e:  # reported in the JSON, with the server log
        result["error"] = repr(e)
    finally:
        server.terminate()
        try:
            result["server_exit"] = server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            result["server_exit"] = "timeout"
    if "error" in result:
        with open(os.path.join(state, "server.log")) as f:
            result["server_log"] = f.read()[-6000:]
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())

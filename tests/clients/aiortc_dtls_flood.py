"""A DTLS flood from a member's own, ICE-confirmed address, with real aiortc clients
(tests/hostile/media.rs).

Usage: aiortc_dtls_flood.py <http base> <api key> <room> [seconds]

Three aiortc clients join one room: a speaker, a listener C and client A. Once A and C hear the
speaker, A turns attacker: from its own ICE socket (the address sluice latched, so the datagrams pass
every address check) it sends DTLS-looking datagrams (first byte 20..63, RFC 7983) as fast as a
script can, 10,000 a second for `seconds`: record headers of every content type and epoch with random
bodies, and bare junk. Half a second into the flood a fourth client D joins: its own DTLS handshake
must complete through the same worker and control plane while the flood runs, and it must hear the
speaker. Prints one JSON object:
{"sent", "a_before", "a_during", "c_before", "c_during", "d_frames", "states", "aiortc"}.
"""

import asyncio
import json
import os
import random
import sys

import aiortc
import requests

from aiortc_reflect import join, leave

BURST = 250
EVERY_S = 0.025


def flood_datagram(rng):
    if rng.random() < 0.8:
        # A DTLS 1.2 record header (type, version, epoch, sequence, length) and a random body.
        body = os.urandom(rng.randrange(0, 1200))
        header = bytes([rng.choice((20, 21, 22, 23)), 0xFE, 0xFD])
        header += rng.choice((0, 1, 0xFFFF)).to_bytes(2, "big") + os.urandom(6)
        return header + len(body).to_bytes(2, "big") + body
    # Junk that only looks like DTLS by its first byte.
    return bytes([rng.randrange(20, 64)]) + os.urandom(rng.randrange(0, 200))


def ice_socket(pc):
    """A's nominated ICE pair: the asyncio transport of its socket and sluice's address."""
    ice = pc.getTransceivers()[0].sender.transport.transport
    pair = ice._connection._nominated[1]
    return pair.protocol.transport, pair.remote_addr


async def wait_frames(frames, n, seconds=10.0):
    for _ in range(int(seconds * 10)):
        if frames[0] >= n:
            return
        await asyncio.sleep(0.1)


async def main():
    base, key, room = sys.argv[1], sys.argv[2], sys.argv[3]
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 4.0
    requests.post(
        f"{base}/v1/rooms", headers={"authorization": f"Bearer {key}"}, json={"name": room}, timeout=5
    ).raise_for_status()
    clients = [await join(base, key, room, "speaker")]
    a = await join(base, key, room, "client-a")
    c = await join(base, key, room, "client-c")
    clients += [a, c]
    a_pc, a_frames, c_frames = a[0], a[3], c[3]
    await wait_frames(a_frames, 25)
    await wait_frames(c_frames, 25)
    a_before, c_before = a_frames[0], c_frames[0]

    transport, server = ice_socket(a_pc)
    rng = random.Random(10)
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + seconds
    sent = 0
    d = None
    while loop.time() < end:
        for _ in range(BURST):
            transport.sendto(flood_datagram(rng), server)
        sent += BURST
        if d is None and loop.time() - start >= 0.5:
            # join() returns once the answer is in; D's DTLS runs on while the flood goes on.
            d = await join(base, key, room, "client-d")
            clients.append(d)
        await asyncio.sleep(EVERY_S)
    a_during, c_during = a_frames[0] - a_before, c_frames[0] - c_before
    d_frames = d[3][0] if d else 0
    states = {name: cl[0].connectionState for name, cl in zip(("speaker", "a", "c", "d"), clients)}

    await leave(clients)
    print(
        json.dumps(
            {
                "sent": sent,
                "a_before": a_before,
                "a_during": a_during,
                "c_before": c_before,
                "c_during": c_during,
                "d_frames": d_frames,
                "states": states,
                "aiortc": aiortc.__version__,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())

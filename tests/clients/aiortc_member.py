"""One aiortc member of a sluice room, driven by another test driver (tests/clients/firefox_room.mjs).

Usage: aiortc_member.py <http base> <api key> <room> <name> <hz> <others> <measure seconds>

Waits for a line `join` on stdin (so a driver can start it early: importing aiortc takes seconds on a
busy machine), then joins <room> as <name> (a participant created with the API key), sending a sine
tone of <hz>, with the
signaling, mesh and SFU handling of `aiortc_hybrid.Member` (peer to peer or through sluice, as the room
says). Once it decodes audio from <others> other members it prints {"ready": true, "id": ...} (or
{"ready": false, ...} after 30 s), then waits for a line `measure` on stdin, decodes for <measure
seconds> and prints one JSON line: per way (mesh or sfu) and sending participant (as `slots` named
it), the frames decoded and the tone heard (frequency from zero crossings, RMS of full scale 1.0). It
leaves the room when stdin closes.
"""

import array
import asyncio
import json
import sys
import time

import aiortc
from aiortc_hybrid import Member


class Tones:
    """Zero crossings and energy of the first channel of every decoded frame, per (via, participant)."""

    def __init__(self):
        self.on = False
        self.acc = {}  # key -> [crossings, samples, sum of squares, last sign]

    def frame(self, key, frame):
        if not self.on or key[1] is None:
            return
        channels = len(frame.layout.channels)
        pcm = array.array("h", bytes(frame.planes[0])[: frame.samples * channels * 2])[::channels]
        a = self.acc.setdefault(key, [0, 0, 0.0, None])
        last = a[3]
        for v in pcm:
            sign = v >= 0
            if last is not None and sign != last:
                a[0] += 1
            last = sign
            a[2] += (v / 32768.0) ** 2
        a[1] += len(pcm)
        a[3] = last

    def report(self, rate=48000):
        out = {}
        for (via, who), (crossings, samples, energy, _) in self.acc.items():
            if samples:
                out.setdefault(via, {})[who] = {
                    "hz": round(crossings / 2 / (samples / rate), 1),
                    "rms": round((energy / samples) ** 0.5, 4),
                }
        return out


async def line():
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def main():
    base, key, room, name = sys.argv[1:5]
    hz, others, seconds = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
    if (await line()).strip() != "join":
        return
    m = Member(base, key, room, name, hz)
    tones = Tones()
    m.on_frame = tones.frame
    runner = asyncio.ensure_future(m.run())

    def heard_from():
        return {who for (_, who), n in m.frames.items() if who is not None and n > 10}

    start = time.monotonic()
    while len(heard_from()) < others and time.monotonic() - start < 30 and not runner.done():
        await asyncio.sleep(0.2)
    ready = len(heard_from()) >= others
    ready_line = {"ready": ready, "id": m.id, "after_s": round(time.monotonic() - start, 2), "version": aiortc.__version__}
    print(json.dumps(ready_line), flush=True)
    out = {"id": m.id, "name": name, "hz": hz}
    try:
        if (await line()).strip() == "measure":
            before = m.snapshot()
            tones.on = True
            await asyncio.sleep(seconds)
            tones.on = False
            after = m.snapshot()
            heard = {}
            for (via, who), n in after.items():
                d = n - before.get((via, who), 0)
                if d > 0 and who is not None:
                    heard.setdefault(via, {})[who] = d
            out.update(
                heard=heard,
                tones=tones.report(),
                modes=m.modes,
                slots=m.slots,
                sfu_state=m.sfu.connectionState if m.sfu else None,
                mesh={p: pc.connectionState for p, pc in m.mesh.items()},
                errors=m.errors,
            )
            print(json.dumps(out), flush=True)
            await line()  # until stdin closes
    finally:
        try:
            await m.leave()
        except Exception:
            pass
        await m.close()
        runner.cancel()


if __name__ == "__main__":
    asyncio.run(main())

"""aiortc clients in a cascaded room (docs/cascade.md): one room across three nodes, its core in
eu and edges in us and ap, linked by relay legs.

Usage: aiortc_cascade.py '<json>' with {"nodes": [{"base": "http://…", "region": "eu", "id": …}, …]
(core first), "key": API key, "room": name, "speakers": {"eu": 2, "us": 1}, "listeners": {"us": 1,
"ap": 1}, "kill": null | "edge" | "core", "room_made": the test made the room, "actions": mute and
kick members of an edge}

1. The room is created on the SFU with `cascade: "nearest"`; the first speaker (in eu) places it
   on the eu node, its core. Every member gets its token through its own region's node as a client
   of that region: members in us and ap are placed on their region's node (an edge).
2. Each member opens signaling where its grant says (following `redirect`), offers, and counts
   the frames it decodes from each participant (named by `slots`). Ready when every member
   decodes every speaker but itself.
3. The relay legs' packet rates are read from every node's /metrics over two seconds of steady
   talk (`sluice_cascade_out_total`, `sluice_cascade_in_total`).
4. With "kill": "edge", the us edge is killed (SIGKILL); its members reconnect (their entry node
   first) and are placed again; with "core", the eu core is killed: the room gets a new core and
   the other edge links to it. The gap until every surviving member hears every surviving speaker
   again is measured.
5. With "actions": the us speaker (on the us edge) is server-muted through the ap node: it gets
   `peer_muted` and its edge's leg to the core falls silent; the us listener is kicked through
   the core: it gets `bye` (kicked) and is gone from the room.
6. One roster across nodes: every member's view (welcome, then peer_joined, peer_left and
   peer_muted) names every other member, whichever node it is on, once ready, after the mute and
   the kick (`rosters`, `muted_told`, `kick_told`), and after a failover (`rosters_back`).

Prints one JSON object.
"""

import asyncio
import json
import os
import signal
import sys
import time

import aioice.ice

from aiortc_cluster import Member, close_all, wait_until
from aiortc_hybrid import api

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


AFTER_FRAMES = 10


def metric(text, name):
    """The sum of a counter over its workers."""
    total = 0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def scrape(nodes):
    import requests

    return {n["id"]: requests.get(n["base"] + "/metrics", timeout=5).text for n in nodes}


def leg_pps(first, second, dt, node, d):
    return round((metric(second[node], f"sluice_cascade_{d}_total") - metric(first[node], f"sluice_cascade_{d}_total")) / dt, 1)


def rosters_complete(members):
    """Whether every member's roster is exactly the other members."""
    return all(set(m.roster) == {o.id for o in members if o is not m} for m in members)


async def mute_and_kick(nodes, by_region, key, room, members, speakers, out):
    """Step 5: a mute and a kick of members an edge serves, asked of other nodes."""
    speaker = next(m for m in speakers if m.region == "us")
    api(by_region["ap"]["base"], key, "POST", f"/v1/rooms/{room}/participants/{speaker.id}/mute", {"muted": True})
    await asyncio.sleep(1.0)
    first = scrape(nodes)
    t = time.monotonic()
    await asyncio.sleep(1.5)
    second = scrape(nodes)
    out["muted_id"] = speaker.id
    out["muted_leg_pps"] = leg_pps(first, second, time.monotonic() - t, by_region["us"]["id"], "out")
    out["muted_seen"] = speaker.peer_muted
    out["muted_told"] = {m.id: m.roster.get(speaker.id) for m in members if m is not speaker}
    listener = next(m for m in members if m.region == "us" and m not in speakers)
    api(nodes[0]["base"], key, "DELETE", f"/v1/rooms/{room}/participants/{listener.id}")
    out["kicked_id"] = listener.id
    out["kicked"] = await wait_until(lambda: listener.bye == "kicked", 5)
    out["kick_told"] = await wait_until(lambda: all(listener.id not in m.roster for m in members if m is not listener), 5)
    out["after_kick"] = [p["id"] for p in api(by_region["ap"]["base"], key, "GET", f"/v1/rooms/{room}")["participants"]]


async def main():
    cfg = json.loads(sys.argv[1])
    nodes, key, room = cfg["nodes"], cfg["key"], cfg["room"]
    by_region = {n["region"]: n for n in nodes}
    if not cfg.get("room_made"):
        api(nodes[0]["base"], key, "POST", "/v1/rooms", {"name": room, "mode": "sfu", "cascade": "nearest", "last_n": 4})
    members, speakers = [], []
    hz = 300
    for role in ("speakers", "listeners"):
        for region, count in cfg[role].items():
            for i in range(count):
                name = f"{region}-{role[:-1]}{i}"
                speaks = role == "speakers"
                m = Member(by_region[region]["base"], key, room, name, hz if speaks else None, region=region,
                           role=None if speaks else "listener")
                m.region = region
                members.append(m)
                if role == "speakers":
                    speakers.append(m)
                hz += 150
    out = {"signal_urls": {m.id: m.grant["signal_url"].split("/v1/")[0] for m in members},
           "names": {m.id: f"{m.region}:{'speaker' if m in speakers else 'listener'}" for m in members}}
    # The edges' members connect first: an edge links to a core that has no member of its own
    # connected yet (the core starts serving the room for the leg).
    runners = [asyncio.ensure_future(m.run()) for m in members if m.region != nodes[0]["region"]]
    out["edges_first"] = await wait_until(lambda: all(m.welcomes for m in members if m.region != nodes[0]["region"]), 10)
    await asyncio.sleep(0.5)
    runners += [asyncio.ensure_future(m.run()) for m in members if m.region == nodes[0]["region"]]
    try:
        def hears_all(ms, ss):
            return all(m.hears([s.id for s in ss if s is not m]) for m in ms)

        out["ready"] = await wait_until(lambda: hears_all(members, speakers), 40)
        out["frames"] = {m.id: dict(m.frames) for m in members}
        out["rosters_complete"] = await wait_until(lambda: rosters_complete(members), 5)
        out["rosters"] = {m.id: sorted(m.roster) for m in members}
        out["room"] = api(nodes[1]["base"], key, "GET", f"/v1/rooms/{room}")
        await asyncio.sleep(1.0)  # steady talk before the rates are read
        first = scrape(nodes)
        t = time.monotonic()
        await asyncio.sleep(2.0)
        second = scrape(nodes)
        dt = time.monotonic() - t
        out["leg_pps"] = {n["id"]: {d: leg_pps(first, second, dt, n["id"], d) for d in ("out", "in")} for n in nodes}
        if cfg.get("actions") and out["ready"]:
            await mute_and_kick(nodes, by_region, key, room, members, speakers, out)
        out["metrics"] = {k: "\n".join(l for l in v.splitlines() if "cascade" in l or "drops_total" in l and not l.endswith(" 0")) for k, v in second.items()}
        out["metrics_all"] = {k: "\n".join(l for l in v.splitlines() if l.startswith("sluice_roster")) for k, v in second.items()}
        kill = cfg.get("kill")
        if kill and out["ready"]:
            victim = nodes[1] if kill == "edge" else nodes[0]
            at = time.monotonic()
            before = {m.id: dict(m.frames) for m in members}
            os.kill(victim["pid"], signal.SIGKILL)
            # Back: AFTER_FRAMES new frames of every other speaker (more than a jitter buffer holds).
            gaps = {}

            def back():
                now = time.monotonic()
                for m in members:
                    if m.id in gaps:
                        continue
                    others = [sp.id for sp in speakers if sp is not m]
                    if all(m.frames.get(o, 0) - before[m.id].get(o, 0) >= AFTER_FRAMES for o in others):
                        gaps[m.id] = round(now - at, 2)
                return len(gaps) == len(members)

            async def poll():
                while not back():
                    await asyncio.sleep(0.05)

            try:
                await asyncio.wait_for(poll(), 25)
                out["back"] = True
            except asyncio.TimeoutError:
                out["back"] = False
            out["gaps"] = gaps
            out["rosters_back"] = await wait_until(lambda: rosters_complete(members), 10)
            out["rosters_after"] = {m.id: sorted(m.roster) for m in members}
            out["frames_after"] = {m.id: {o: m.frames.get(o, 0) - before[m.id].get(o, 0) for o in m.frames} for m in members}
            survivor = next(n for n in nodes if n is not victim)
            out["after"] = api(survivor["base"], key, "GET", f"/v1/rooms/{room}")
        out["errors"] = {m.id: m.errors for m in members if m.errors}
        out["redirects"] = {m.id: m.redirects for m in members}
    finally:
        await close_all(members, runners)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())

"""What one connected member costs the server in memory: real aiortc members (ICE, DTLS-SRTP,
signaling) and plain SRTP transports against a real `sluice serve`, measured from its RSS.

Usage (from the repository root, with the test venv that scripts/test makes):
    .venv/bin/python benches/member_memory.py target/release/sluice [--members 50]
    .venv/bin/python benches/member_memory.py "heaptrack -o /tmp/ht/sluice target/release/sluice"
(a wrapper is fine: the RSS read, and the SIGTERM at the end, are the sluice process's).

1. Starts `sluice serve` (one worker, loopback) and one speaker, so everything made once (the
   DTLS certificate, worker buffers, the runtime's threads) exists before the baseline.
2. Connects `--members` aiortc listeners; once every one decodes the speaker and their handshakes
   are `--settle` seconds old, reads the server's RSS again: (after - before) / members. With
   `--then N`, connects N more the same way and reports their marginal cost too (what the first
   batch grew once, the allocator's arenas and tables, is not in it). Each reading also splits the
   RSS by mapping (the main heap, other anonymous memory, files), from /proc/pid/smaps.
3. Adds as many plain SRTP listeners over REST and reads it once more.
With --kill-connected the server is SIGKILLed after step 2, its members still connected: under
heaptrack, `heaptrack_print --print-leaks 1` then lists what they hold, by call site.

Prints one JSON object (KiB per member for each kind, and the raw RSS figures). Memory figures,
not speed: RSS moves with the allocator, so quote the marginal over many members, not one.
"""

import argparse
import asyncio
import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "clients"))

from aiortc_cluster import Member, close_all, wait_until  # noqa: E402
from aiortc_hybrid import api  # noqa: E402

KEY = "member-memory-bench-key-0123456789abcdef"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def sluice_pid(proc):
    """The server's pid: `proc`'s, or that of its descendant named sluice when `proc` is a wrapper
    (heaptrack, say: `benches/member_memory.py "heaptrack sluice"`)."""
    pids = {proc.pid}
    for _ in range(50):
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{d}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if int(fields[1]) in pids:
                pids.add(int(d))
                if comm.startswith("sluice"):
                    return int(d)
        try:
            with open(f"/proc/{proc.pid}/comm") as f:
                if f.read().strip().startswith("sluice"):
                    return proc.pid
        except OSError:
            pass
        time.sleep(0.1)
    return proc.pid


def rss_by_mapping(pid):
    """The RSS (KiB) of `pid` by kind of mapping, from /proc/pid/smaps: `heap` (the main arena),
    `anon` (other arenas, thread stacks, mmap'd blocks), `file` (the binary, libraries)."""
    out = {"heap": 0, "anon": 0, "file": 0}
    kind = "anon"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if not head:
                continue
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                name = head[5] if len(head) > 5 else ""
                kind = "heap" if name == "[heap]" else "file" if name.startswith("/") else "anon"
            elif head[0] == "Rss:":
                out[kind] += int(head[1])
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def settle_rss(pid, seconds):
    """The RSS after `seconds`, once it stopped moving (sampled every 0.5 s)."""
    await asyncio.sleep(seconds)
    last = rss_kib(pid)
    for _ in range(10):
        await asyncio.sleep(0.5)
        now = rss_kib(pid)
        if abs(now - last) < 64:
            return now
        last = now
    return last


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--members", type=int, default=50)
    ap.add_argument("--then", type=int, default=0,
                    help="after the first --members, connect this many more and report what each of "
                         "those cost (the marginal, without what the first members grew once)")
    ap.add_argument("--settle", type=float, default=12.0, help="seconds after the handshakes")
    ap.add_argument("--kill-connected", action="store_true",
                    help="SIGKILL the server once the WebRTC members are measured, while they are still "
                         "connected: under heaptrack its 'leaks' are then what they hold")
    args = ap.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    state = tempfile.mkdtemp(prefix="sluice-mem-")
    server = subprocess.Popen(
        [*args.binary.split(), "serve", "--http", f"127.0.0.1:{port}", "--udp-port", "0", "--workers", "1",
         "--api-key", KEY, "--state-dir", state],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    members, runners, speaker = [], [], None
    pid = sluice_pid(server)
    out = {"members": args.members}
    try:
        await wait_until(lambda: _up(base), 20)
        room = "memory"
        api(base, KEY, "POST", "/v1/rooms", {"name": room, "mode": "sfu", "max_participants": 2 * args.members + args.then + 10})
        speaker = Member(base, KEY, room, "speaker", 440)
        runners.append(asyncio.ensure_future(speaker.run()))
        assert await wait_until(lambda: speaker.welcomes, 20), "the speaker connects"
        await asyncio.sleep(2.0)
        before = await settle_rss(pid, 1.0)
        before_maps = rss_by_mapping(pid)
        for i in range(args.members):
            m = Member(base, KEY, room, f"listener{i}", None, role="listener")
            members.append(m)
            runners.append(asyncio.ensure_future(m.run()))
        heard = await wait_until(lambda: all(m.hears([speaker.id]) for m in members), 120)
        out["all_hear_the_speaker"] = heard
        after = await settle_rss(pid, args.settle)
        out["webrtc_kib_per_member"] = round((after - before) / args.members, 1)
        out["rss_by_mapping_kib"] = {"baseline": before_maps, "webrtc": rss_by_mapping(pid)}
        if args.then:
            more = []
            for i in range(args.then):
                m = Member(base, KEY, room, f"more{i}", None, role="listener")
                more.append(m)
                runners.append(asyncio.ensure_future(m.run()))
            members.extend(more)
            out["then_hear_the_speaker"] = await wait_until(
                lambda: all(m.hears([speaker.id]) for m in more), 120)
            later = await settle_rss(pid, args.settle)
            out["then"] = args.then
            out["webrtc_kib_per_member_marginal"] = round((later - after) / args.then, 1)
            out["rss_by_mapping_kib"]["then"] = rss_by_mapping(pid)
            after = later
        if args.kill_connected:
            os.kill(pid, signal.SIGKILL)
            out["rss_kib"] = {"baseline": before, "webrtc": after}
            return
        plain = []
        for i in range(args.members):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            plain.append(sock)
            api(base, KEY, "POST", f"/v1/rooms/{room}/plain", {
                "name": f"plain{i}", "role": "listener", "remote": f"127.0.0.1:{sock.getsockname()[1]}",
                "srtp": {"profile": "aes128gcm", "key": base64.b64encode(secrets.token_bytes(28)).decode()}})
        with_plain = await settle_rss(pid, 2.0)
        out["plain_kib_per_member"] = round((with_plain - after) / args.members, 1)
        out["rss_by_mapping_kib"]["plain"] = rss_by_mapping(pid)
        out["rss_kib"] = {"baseline": before, "webrtc": after, "plain": with_plain}
        for s in plain:
            s.close()
    finally:
        await close_all([m for m in [*members, speaker] if m], runners)
        if not args.kill_connected:
            os.kill(pid, signal.SIGTERM)
        server.wait(60)
        print(json.dumps(out))


def _up(base):
    import requests

    try:
        return requests.get(base + "/healthz", timeout=1).ok
    except Exception:
        return False


if __name__ == "__main__":
    asyncio.run(main())

"""ffmpeg (Debian's) as a plain RTP/SRTP publisher and listener through a real `sluice serve`.

Usage (inside a private network namespace, as tests/ffmpeg_clients.rs runs it):
    unshare -rn .venv/bin/python tests/clients/ffmpeg_room.py <sluice binary> <work dir>

Brings `lo` up, starts sluice, and for each of AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32 and
plain RTP creates a room with two plain transports over REST: a publisher (ffmpeg encoding a sine
tone with libopus, sending from a fixed local port, RTCP from the next one, as ffmpeg does) and a
listener (ffmpeg reading an SDP file with the slot's port and sluice's key, writing a WAV). The three
run at once, each with its own tone. Prints one JSON line: per case the WAV's length, its level and
how much of its energy sits at the publisher's tone (Goertzel), ffmpeg's version, and the server's
/metrics. Exit code 0 when the scenario could run (the Rust test judges it).
"""

import base64
import json
import math
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import wave

import requests

KEY = "ffmpeg-test-key-0123456789abcdefghijklmnop"
CASES = [
    ("AES_CM_128_HMAC_SHA1_80", 440.0),
    ("AES_CM_128_HMAC_SHA1_32", 550.0),
    (None, 660.0),  # plain RTP
]
PUBLISH_SECONDS = 7
LISTEN_SECONDS = 4


def free_port_pair():
    """An even UDP port whose next port is free too (ffmpeg sends RTCP from port + 1)."""
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p % 2 or p > 65000:
            continue
        try:
            for q in (p, p + 1):
                t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                t.bind(("127.0.0.1", q))
                t.close()
            return p
        except OSError:
            continue


def start_server(binary, work):
    config = os.path.join(work, "sluice.toml")
    with open(config, "w") as f:
        f.write(f'http = "127.0.0.1:0"\nudp_port = 0\nworkers = 2\napi_key = "{KEY}"\n')
        f.write(f"state_dir = {json.dumps(work)}\n")
    log = open(os.path.join(work, "sluice.log"), "w")
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
    server = subprocess.Popen([binary, "serve", "--config", config], stdout=subprocess.PIPE, stderr=log, env=env, text=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        line = server.stdout.readline()
        m = re.search(r"listening on (http://[0-9.:]+)", line)
        if m:
            return server, m.group(1)
    raise RuntimeError("sluice did not start")


def goertzel_power(samples, rate, hz):
    k = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def analyse(path, tone):
    """Length, RMS level and the tone's share of the energy (vs. its neighbours) of a mono WAV."""
    try:
        with wave.open(path) as w:
            rate, n, width, chans = w.getframerate(), w.getnframes(), w.getsampwidth(), w.getnchannels()
            raw = w.readframes(n)
    except (OSError, wave.Error, EOFError) as e:
        return {"error": f"no WAV: {e}"}
    if width != 2:
        return {"error": f"sample width {width}"}
    vals = [int.from_bytes(raw[i : i + 2], "little", signed=True) for i in range(0, len(raw), 2 * chans)]
    seconds = len(vals) / rate if rate else 0
    # One second from the middle: after the stream started, before it ended.
    mid = len(vals) // 2
    window = vals[max(0, mid - rate // 2) : mid + rate // 2]
    rms = math.sqrt(sum(v * v for v in window) / len(window)) if window else 0.0
    at_tone = goertzel_power(window, rate, tone) if window else 0.0
    others = [goertzel_power(window, rate, tone * f) for f in (0.5, 0.75, 1.25, 1.5)] if window else [0.0]
    return {
        "seconds": round(seconds, 2),
        "rms": round(rms, 1),
        "tone_vs_neighbours": round(at_tone / max(max(others), 1e-9), 1),
    }


def main():
    binary, work = sys.argv[1], sys.argv[2]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    server, base = start_server(binary, work)
    auth = {"authorization": f"Bearer {KEY}"}
    version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0].split(" Copyright")[0]
    procs = []
    cases = []
    try:
        for i, (suite, tone) in enumerate(CASES):
            room = f"ffmpeg{i}"
            requests.post(f"{base}/v1/rooms", headers=auth, json={"name": room}, timeout=5).raise_for_status()
            ssrc = 0x1000 + i
            mic_port = free_port_pair()
            ear_port = free_port_pair()
            mic_key = base64.b64encode(secrets.token_bytes(30)).decode()
            mic_req = {"name": "ffmpeg-mic", "ssrc": ssrc, "slots": 0}
            ear_req = {"name": "ffmpeg-ear", "role": "listener", "slots": 1, "remote": f"127.0.0.1:{ear_port}"}
            if suite:
                mic_req["srtp"] = {"profile": suite, "key": mic_key}
                ear_req["srtp"] = {"profile": suite, "key": base64.b64encode(secrets.token_bytes(30)).decode()}
            else:
                # Plain RTP never latches (anyone could send it): the publisher's address is named.
                mic_req["remote"] = f"127.0.0.1:{mic_port}"
            r = requests.post(f"{base}/v1/rooms/{room}/plain", headers=auth, json=mic_req, timeout=5)
            r.raise_for_status()
            mic = r.json()
            r = requests.post(f"{base}/v1/rooms/{room}/plain", headers=auth, json=ear_req, timeout=5)
            r.raise_for_status()
            ear = r.json()
            sdp = [
                "v=0", "o=- 0 0 IN IP4 127.0.0.1", "s=sluice", "c=IN IP4 127.0.0.1", "t=0 0",
                f"m=audio {ear_port} {'RTP/SAVP' if suite else 'RTP/AVP'} 111",
                "a=rtpmap:111 opus/48000/2",
            ]
            if suite:
                sdp.append(f"a=crypto:1 {suite} inline:{ear['srtp']['key']}")
            sdp_path = os.path.join(work, f"ear{i}.sdp")
            with open(sdp_path, "w") as f:
                f.write("\r\n".join(sdp) + "\r\n")
            wav = os.path.join(work, f"ear{i}.wav")
            ear_proc = subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-protocol_whitelist", "file,udp,rtp,srtp",
                 "-i", sdp_path, "-t", str(LISTEN_SECONDS), "-ac", "1", "-ar", "48000", "-y", wav],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            host, port = mic["server"].rsplit(":", 1)
            out = ["-f", "rtp"]
            # RTCP goes to sluice's one port (rtcpport; else ffmpeg aims at port + 1), from mic_port + 1.
            query = f"localport={mic_port}&rtcpport={port}"
            if suite:
                out += ["-srtp_out_suite", suite, "-srtp_out_params", mic_key, f"srtp://{host}:{port}?{query}"]
            else:
                out += [f"rtp://{host}:{port}?{query}"]
            mic_proc = subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi",
                 "-i", f"sine=frequency={tone}:sample_rate=48000", "-t", str(PUBLISH_SECONDS),
                 "-c:a", "libopus", "-b:a", "64k", "-payload_type", "111", "-ssrc", str(ssrc), *out],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            procs += [ear_proc, mic_proc]
            cases.append({"profile": suite or "plain RTP", "tone": tone, "wav": wav, "ear": ear_proc, "mic": mic_proc})
        for c in cases:
            for role in ("ear", "mic"):
                p = c[role]
                try:
                    _, err = p.communicate(timeout=PUBLISH_SECONDS + 10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    _, err = p.communicate()
                c[role] = {"exit": p.returncode, "stderr": err[-800:]}
        metrics = requests.get(f"{base}/metrics", timeout=5).text
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        server.terminate()
        server.wait(timeout=10)
    for c in cases:
        c["audio"] = analyse(c.pop("wav"), c["tone"])
    print(json.dumps({"ffmpeg": version, "cases": cases, "metrics": metrics}))


if __name__ == "__main__":
    main()

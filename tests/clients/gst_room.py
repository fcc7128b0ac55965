"""GStreamer webrtcbin clients and an aiortc client in one sluice `sfu` room, for a long call.

tests/gstreamer_clients.rs runs it inside a private network namespace (`unshare -n`: only `lo`, so
127.0.0.1 is the one ICE candidate and nothing leaves the machine), with Debian's /usr/bin/python3
(python3-gi, GStreamer 1.22, libnice; python3-websockets for signaling):

  gst_room.py <sluice binary> <work dir> <aiortc python> [seconds] [--no-ssrc]

It brings `lo` up, starts `sluice serve` (RUST_LOG=info, two workers), creates an `sfu` room, starts
one aiortc client (tests/clients/aiortc_room.py with `--existing-room --epoch`, in the venv's Python)
and two webrtcbin clients in this process, each sending its own tone (aiortc 300 Hz, gst0 500 Hz,
gst1 700 Hz) with one send and two receive transceivers. Every client stays until <seconds> (default
56) after the common start, i.e. about 50 s of call after ICE and DTLS, past the 30 s after which
sluice drops a transport nobody keeps alive: libnice keeps its pair alive with its default Binding
*indications* (keepalive-conncheck stays off), so only the media itself keeps the call up.

gst0 offers with `a=ssrc` (the offer is created once the payloader's caps, which carry the SSRC,
have reached webrtcbin); gst1 does too, unless `--no-ssrc`: then its `a=ssrc` lines are removed from
the offer text before sending, as webrtcbin itself writes an offer created before the caps arrive.

libnice gathers nothing on loopback by default: each webrtcbin gets 127.0.0.1 through its ICE agent's
`add-local-ip-address` (and no TCP candidates). The payloaders' caps carry `encoding-params=2`, so
the send sections say `OPUS/48000/2` as RFC 7587 requires; gst0's receive transceivers get caps
without it, as many GStreamer applications write them, so its receive sections say `OPUS/48000`
(sluice accepts that and answers `/2`); gst1's have it.

Each client counts, per second since the common start and per remote sender (the participant that
the latest `slots` message put on the receiving mid), the RTP packets (webrtcbin only) and the
decoded 20 ms frames with sound in them, and estimates the tone's frequency from zero crossings.
Prints one JSON line:
{"epoch", "seconds", "versions": {gstreamer, libnice, python, aiortc}, "clients": [{"name", "kind", "id",
"tone_hz", "offer_has_ssrc", "connected_at", "state", "errors", "heard": {participant: {"rtp": [..],
"frames": [..], "hz": [..]}}, "sent": [..]}], "metrics", "dtls": [{"participant", "profile", "dtls"}] (from the server's
"DTLS-SRTP established" log lines; null where the server does not log it), "server_log",
"server_exit", "error"}. Exit 0 when the scenario could run (the Rust test judges), 1 otherwise.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from array import array

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import Gst, GstSdp, GstWebRTC  # noqa: E402
import websockets  # noqa: E402

KEY = "gstreamer-test-key-0123456789abcdefghijklmnop"
ROOM = "gst"
HERE = os.path.dirname(os.path.abspath(__file__))
OPUS_CAPS = "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=111"
OPUS_CAPS_2 = OPUS_CAPS + ",encoding-params=(string)2"
FREQ_EVERY = 5  # estimate the frequency on one decoded buffer in this many


def api(base, method, path, body=None):
    req = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def tone_hz(a, rate=48000):
    """The frequency of a clean tone in samples `a`, from their zero crossings."""
    crossings = sum(1 for i in range(1, len(a)) if (a[i - 1] < 0) != (a[i] < 0))
    return crossings * rate / (2 * len(a))


class Counter:
    """Per-second counts per remote sender, since the common start."""

    def __init__(self, epoch, seconds):
        self.epoch, self.n = epoch, int(seconds) + 1
        self.lock = threading.Lock()
        self.by = {}  # who -> {"rtp": [..], "frames": [..], "hz": [[..]]}

    def _slot(self, who):
        e = self.by.get(who)
        if e is None:
            e = self.by[who] = {"rtp": [0] * self.n, "frames": [0] * self.n, "hz": [[] for _ in range(self.n)]}
        return e

    def add(self, who, kind, k=1, hz=None):
        sec = int(time.time() - self.epoch)
        if not 0 <= sec < self.n:
            return
        with self.lock:
            e = self._slot(who)
            e[kind][sec] += k
            if hz is not None:
                e["hz"][sec].append(hz)

    def result(self):
        with self.lock:
            out = {}
            for who, e in self.by.items():
                hz = [round(sorted(h)[len(h) // 2]) if h else None for h in e["hz"]]
                out[who] = {"rtp": e["rtp"], "frames": e["frames"], "hz": hz}
            return out


class GstClient:
    """One webrtcbin peer: a tone out, two receive slots in, signaling over a WebSocket."""

    def __init__(self, loop, base, name, hz, strip_ssrc, channel_count, epoch, seconds):
        self.loop, self.base, self.name, self.hz = loop, base, name, hz
        self.strip_ssrc, self.epoch, self.seconds = strip_ssrc, epoch, seconds
        self.recv_caps = OPUS_CAPS_2 if channel_count else OPUS_CAPS
        self.heard = Counter(epoch, seconds)
        self.sent = Counter(epoch, seconds)
        self.announced = {}  # mid -> participant, from the latest `slots`
        self.slots_log = []  # [seconds since start, {mid: participant}]
        self.errors = []
        self.connected_at = None
        self.states = []
        self.keep = []  # objects whose Python wrappers must outlive the pipeline (see build, promise)

    def log_state(self, what, value):
        self.states.append([round(time.time() - self.epoch, 2), what, value])

    def build(self):
        self.pipe = Gst.parse_launch(
            f"webrtcbin name=w bundle-policy=max-bundle latency=100 "
            f"audiotestsrc is-live=true wave=sine freq={self.hz} volume=0.4 ! audioconvert ! audioresample "
            f"! audio/x-raw,channels=1 ! opusenc bitrate=32000 ! rtpopuspay pt=111 ! {OPUS_CAPS_2} ! w."
        )
        w = self.w = self.pipe.get_by_name("w")
        # The ICE agent (GstWebRTCNice) comes back from the property with a reference Python takes
        # over as its own: dropping the wrapper would free the agent under webrtcbin. Keep it.
        ice = w.get_property("ice-agent")
        self.keep.append(ice)
        # libnice leaves loopback out of its host candidates; 127.0.0.1 is all this namespace has.
        ice.emit("add-local-ip-address", "127.0.0.1")
        ice.set_property("ice-tcp", False)
        agent = ice.get_property("agent")
        self.keepalive_conncheck = bool(agent.get_property("keepalive-conncheck"))
        for _ in range(2):
            w.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY, Gst.Caps.from_string(self.recv_caps))
        w.connect("pad-added", self.on_pad)
        w.connect("notify::connection-state", self.on_conn_state)
        w.connect("notify::ice-connection-state", lambda w, _: self.log_state("ice", w.get_property("ice-connection-state").value_nick))
        sink = w.get_static_pad("sink_0")
        sink.add_probe(Gst.PadProbeType.BUFFER, self.on_sent)

    def on_sent(self, pad, info):
        self.sent.add("me", "rtp")
        return Gst.PadProbeReturn.OK

    def on_conn_state(self, w, _):
        s = w.get_property("connection-state")
        self.log_state("pc", s.value_nick)
        if s == GstWebRTC.WebRTCPeerConnectionState.CONNECTED and self.connected_at is None:
            self.connected_at = round(time.time() - self.epoch, 2)

    def who(self, mid):
        return self.announced.get(mid) or f"unannounced:{mid}"

    def on_pad(self, w, pad):
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        mid = pad.get_property("transceiver").get_property("mid")
        rtp_probe = lambda p, info: (self.heard.add(self.who(mid), "rtp"), Gst.PadProbeReturn.OK)[1]
        pad.add_probe(Gst.PadProbeType.BUFFER, rtp_probe)
        dec = Gst.parse_bin_from_description(
            "rtpopusdepay ! opusdec plc=true ! audioconvert ! audio/x-raw,format=S16LE,channels=1 ! fakesink name=sink sync=false",
            True,
        )
        n = [0]

        def on_pcm(p, info):
            buf = info.get_buffer()
            ok, m = buf.map(Gst.MapFlags.READ)
            if ok:
                data = bytes(m.data)
                buf.unmap(m)
                a = array("h")
                a.frombytes(data[: len(data) // 2 * 2])
                if len(a) > 1 and max(abs(min(a)), max(a)) >= 500:  # sound, not silence
                    n[0] += 1
                    hz = tone_hz(a) if n[0] % FREQ_EVERY == 0 else None
                    self.heard.add(self.who(mid), "frames", hz=hz)
            return Gst.PadProbeReturn.OK

        dec.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_pcm)
        self.pipe.add(dec)
        dec.sync_state_with_parent()
        pad.link(dec.get_static_pad("sink"))

    def promise(self, fn):
        """A Gst.Promise whose reply (a Gst.Structure) resolves an asyncio future."""
        fut = self.loop.create_future()

        def done(p, _):
            # Values taken from the reply point into it: keep it for as long as they are used.
            reply = p.get_reply()
            self.keep.append(reply)
            try:
                value = fn(reply)
            except Exception as e:  # noqa: BLE001
                self.loop.call_soon_threadsafe(fut.set_exception, e)
                return
            self.loop.call_soon_threadsafe(fut.set_result, value)

        return Gst.Promise.new_with_change_func(done, None), fut

    async def create_offer(self):
        # Wait for the payloader's caps (they carry its SSRC) so the offer has a=ssrc.
        sink = self.w.get_static_pad("sink_0")
        for _ in range(100):
            caps = sink.get_current_caps()
            if caps and caps.get_structure(0).has_field("ssrc"):
                break
            await asyncio.sleep(0.05)
        p, fut = self.promise(lambda r: r.get_value("offer"))
        self.w.emit("create-offer", None, p)
        offer = await fut
        self.keep.append(offer)
        p2, fut2 = self.promise(lambda r: None)
        self.w.emit("set-local-description", offer, p2)
        await fut2
        return offer.sdp.as_text()

    async def set_answer(self, text):
        ok, msg = GstSdp.SDPMessage.new_from_text(text)
        if ok != GstSdp.SDPResult.OK:
            raise RuntimeError(f"{self.name}: unparsable answer")
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        self.keep.append(answer)
        p, fut = self.promise(lambda r: r.get_value("error") if r is not None and r.has_field("error") else None)
        self.w.emit("set-remote-description", answer, p)
        err = await fut
        if err:
            raise RuntimeError(f"{self.name}: set-remote-description: {err}")

    async def run(self):
        grant = json.loads(
            await asyncio.to_thread(api, self.base, "POST", f"/v1/rooms/{ROOM}/participants", {"name": self.name})
        )
        self.build()
        self.pipe.set_state(Gst.State.PLAYING)
        async with websockets.connect(grant["signal_url"]) as ws:
            welcome = json.loads(await ws.recv())
            assert welcome["type"] == "welcome", welcome
            self.id = welcome["participant"]["id"]
            offer = await self.create_offer()
            if self.strip_ssrc:
                offer = "".join(l for l in offer.splitlines(True) if not l.startswith("a=ssrc"))
            self.offer_has_ssrc = "a=ssrc:" in offer
            self.offer = offer
            await ws.send(json.dumps({"type": "offer", "sdp": offer}))
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if msg["type"] == "answer":
                    break
                if msg["type"] == "error":
                    raise RuntimeError(f"{self.name}: {msg}")
            self.answer = msg["sdp"]
            await self.set_answer(msg["sdp"])

            async def drain():
                async for raw in ws:
                    m = json.loads(raw)
                    if m["type"] == "slots":
                        self.announced = {x["mid"]: x["participant"] for x in m["slots"]}
                        self.slots_log.append([round(time.time() - self.epoch, 2), dict(self.announced)])
                    elif m["type"] in ("error", "bye"):
                        self.errors.append([round(time.time() - self.epoch, 2), m])

            drainer = asyncio.ensure_future(drain())
            await asyncio.sleep(max(0.0, self.epoch + self.seconds - time.time()))
            drainer.cancel()
            self.state = self.w.get_property("connection-state").value_nick
            await ws.send(json.dumps({"type": "leave"}))
        self.pipe.set_state(Gst.State.NULL)

    def result(self):
        return {
            "name": self.name,
            "kind": "webrtcbin",
            "id": getattr(self, "id", None),
            "tone_hz": self.hz,
            "offer_has_ssrc": getattr(self, "offer_has_ssrc", None),
            "keepalive_conncheck": getattr(self, "keepalive_conncheck", None),
            "connected_at": self.connected_at,
            "offer": getattr(self, "offer", None),
            "answer": getattr(self, "answer", None),
            "state": getattr(self, "state", None),
            "states": self.states,
            "errors": self.errors,
            "slots_log": self.slots_log,
            "announced": self.announced,
            "heard": self.heard.result(),
            "sent": self.sent.result().get("me", {}).get("rtp", []),
        }


def start_server(bin_path, work_dir):
    log = open(os.path.join(work_dir, "sluice.log"), "w+")
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG") or "info")
    env.pop("SLUICE_API_KEY", None)
    server = subprocess.Popen(
        [bin_path, "serve", "--http", "127.0.0.1:0", "--udp-port", "0", "--workers", "2",
         "--api-key", KEY, "--state-dir", work_dir],
        stdout=subprocess.PIPE, stderr=log, env=env, text=True,
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        line = server.stdout.readline()
        m = re.search(r"listening on (http://[0-9.:]+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
            return server, log, m.group(1)
        if not line and server.poll() is not None:
            break
    raise RuntimeError(f"sluice did not start (exit {server.poll()})")


async def scenario(result, base, aiortc_python, seconds, no_ssrc):
    await asyncio.to_thread(api, base, "POST", "/v1/rooms", {"name": ROOM, "mode": "sfu"})
    epoch = time.time()
    result["epoch"], result["seconds"] = epoch, seconds
    aiortc = await asyncio.create_subprocess_exec(
        aiortc_python, os.path.join(HERE, "aiortc_room.py"), base, KEY, ROOM, "1", str(seconds),
        "--existing-room", f"--epoch={epoch}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    loop = asyncio.get_running_loop()
    gst = [
        GstClient(loop, base, "gst0", 500, False, False, epoch, seconds),
        GstClient(loop, base, "gst1", 700, no_ssrc, True, epoch, seconds),
    ]
    outcomes = await asyncio.gather(*(c.run() for c in gst), return_exceptions=True)
    out, err = await asyncio.wait_for(aiortc.communicate(), 30)
    result["clients"] = [c.result() for c in gst]
    for c, o in zip(result["clients"], outcomes):
        if isinstance(o, BaseException):
            c["failure"] = repr(o)
    try:
        a = json.loads(out.decode().strip().splitlines()[-1])
        result["versions"]["aiortc"] = a.get("aiortc")
        for c in a["clients"]:
            c["kind"] = "aiortc"
            c["tone_hz"] = 300
            result["clients"].append(c)
    except (IndexError, ValueError, KeyError) as e:
        raise RuntimeError(f"aiortc_room.py exited {aiortc.returncode} without JSON ({e}): {out.decode()}\n{err.decode()[-3000:]}")
    result["metrics"] = await asyncio.to_thread(lambda: urllib.request.urlopen(base + "/metrics", timeout=10).read().decode())


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    no_ssrc = "--no-ssrc" in sys.argv[1:]
    bin_path, work_dir, aiortc_python = args[0], args[1], args[2]
    seconds = float(args[3]) if len(args) > 3 else 56.0
    Gst.init(None)
    nice = Gst.Registry.get().find_plugin("nice")
    result = {
        "versions": {
            "gstreamer": Gst.version_string(),
            "libnice": nice.get_version() if nice else None,
            "python": sys.version.split()[0],
        },
        "clients": [],
    }
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    server = log = None
    try:
        server, log, base = start_server(bin_path, work_dir)
        asyncio.run(scenario(result, base, aiortc_python, seconds, no_ssrc))
    except Exception as e:  # noqa: BLE001
        result["error"] = repr(e)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                result["server_exit"] = server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                result["server_exit"] = "timeout"
            log.seek(0)
            lines = log.read().splitlines()
            dtls = []
            transports = {}  # transport -> participant, from "offer answered"
            field = lambda l, k: (re.search(k + r'="?([A-Za-z0-9_.]+)', l) or [None, None])[1]
            for l in lines:
                if "offer answered" in l:
                    transports[field(l, "transport")] = field(l, "participant")
                if "DTLS-SRTP established" in l:
                    t = field(l, "transport")
                    dtls.append({"transport": t, "participant": field(l, "participant") or transports.get(t),
                                 "profile": field(l, "profile"), "dtls": field(l, "dtls")})
            result["dtls"] = dtls
            result["server_log"] = "\n".join(l for l in lines if "DEBUG" not in l)[-6000:]
    print(json.dumps(result), flush=True)
    # Leave without tearing GStreamer down from Python (see `keep` above).
    os._exit(1 if result.get("error") else 0)


if __name__ == "__main__":
    main()

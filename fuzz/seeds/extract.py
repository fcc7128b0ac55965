"""Turns a pcap of a real session (sluice + aiortc clients on `lo`, see make.sh) into fuzz seeds:
one file per distinct datagram shape, filed under the targets that parse that kind of datagram, and
the clients' real SDP offer (plus variants) for the SDP and signaling targets.

Usage: extract.py <pcap> <offer.sdp> <out dir>
"""

import hashlib
import json
import os
import struct
import sys

pcap, offer_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
SRTP_GCM = 2  # index of AEAD_AES_128_GCM in SrtpProfile::ALL (what aiortc negotiates)


def put(target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


with open(pcap, "rb") as f:
    raw = f.read()
linktype = struct.unpack_from("<I", raw, 20)[0]
link_len = {1: 14, 0: 4, 113: 16}[linktype]
pos, seen = 24, {}
while pos + 16 <= len(raw):
    _, _, incl, _ = struct.unpack_from("<IIII", raw, pos)
    frame = raw[pos + 16 : pos + 16 + incl]
    pos += 16 + incl
    ip = frame[link_len:]
    if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
        continue
    ihl = (ip[0] & 0x0F) * 4
    payload = ip[ihl + 8 :]
    if not payload:
        continue
    b0 = payload[0]
    if b0 < 4:
        kind = "stun"
    elif 20 <= b0 < 64:
        kind = "dtls"
    elif 128 <= b0 < 192:
        kind = "rtcp" if 192 <= payload[1] <= 223 else "rtp"
    else:
        continue
    # A few of each kind and size: handshakes are all kept, media sampled.
    key = (kind, len(payload) // 16)
    if seen.get(key, 0) >= (8 if kind in ("stun", "dtls") else 2):
        continue
    seen[key] = seen.get(key, 0) + 1
    if kind == "stun":
        put("stun_ice", payload)
        put("forwarder", bytes([2]) + payload)
    elif kind == "dtls":
        put("dtls_records", payload)
        put("forwarder", bytes([2]) + payload)
    elif kind == "rtcp":
        put("rtcp", payload)
        put("srtp_unprotect", bytes([SRTP_GCM]) + payload)
        put("forwarder", bytes([2]) + payload)
    else:
        put("rtp", payload)
        put("srtp_unprotect", bytes([SRTP_GCM]) + payload)
        put("forwarder", bytes([0]) + payload)
        put("forwarder", bytes([2]) + payload)

offer = open(offer_path).read()
variants = [
    offer,
    "".join(l for l in offer.splitlines(keepends=True) if not l.startswith("a=ssrc")),
    offer.replace("opus/48000/2", "opus/48000"),
    offer.replace("a=setup:actpass", "a=setup:active"),
]
for v in variants:
    put("sdp_offer", v.encode())
for msg in [
    {"type": "offer", "sdp": offer},
    {"type": "peer_offer", "to": "p_2_abcdef12", "sdp": offer},
    {"type": "peer_answer", "to": "p_2_abcdef12", "sdp": offer},
    {"type": "peer_candidate", "to": "p_2_abcdef12", "candidate": {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host", "sdpMid": "0"}},
    {"type": "mute", "muted": True},
    {"type": "leave"},
]:
    put("signal_message", json.dumps(msg).encode())
# The SRTP cross-check: a few packets around the 16-bit wrap, with extensions and CSRCs.
for profile in range(4):
    body = bytes([profile])
    for seq, shape in [(65533, 4), (65534, 5), (2, 4), (65535, 4), (0, 6), (65500, 0), (1, 4)]:
        body += struct.pack(">HBB", seq, shape, 20) + bytes(range(20))
    put("srtp_engines_agree", body)
print(json.dumps({k: len(os.listdir(os.path.join(out, k))) for k in sorted(os.listdir(out)) if os.path.isdir(os.path.join(out, k))}))

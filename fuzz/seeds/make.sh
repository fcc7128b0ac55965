#!/usr/bin/env bash
# Captures a real session and turns it into fuzz seeds (fuzz/seeds/<target>/): sluice and two aiortc
# clients inside a private network namespace (root: tcpdump needs it), tcpdump on `lo`, then
# extract.py. Needs a built `target/debug/sluice`, the `.venv` of scripts/test and tcpdump.
# Usage (from the repository root): unshare -n fuzz/seeds/make.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
ip link set lo up
tcpdump -Z root -i lo -U -w "$work/session.pcap" udp 2>/dev/null &
dump=$!
sleep 1
key=seed-capture-key-seed-capture-key-0
target/debug/sluice serve --http 127.0.0.1:8099 --udp-port 0 --workers 1 --api-key "$key" \
  --state-dir "$work" >/dev/null 2>&1 &
server=$!
sleep 2
.venv/bin/python - "$work/offer.sdp" <<'PY'
import asyncio, sys
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
async def main():
    pc = RTCPeerConnection()
    pc.addTransceiver(AudioStreamTrack(), direction="sendrecv")
    for _ in range(2):
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    open(sys.argv[1], "w").write(pc.localDescription.sdp)
    await pc.close()
asyncio.run(main())
PY
.venv/bin/python tests/clients/aiortc_room.py http://127.0.0.1:8099 "$key" seeds 2 3 >/dev/null
kill "$server"; sleep 1; kill "$dump"; wait "$dump" || true
python3 fuzz/seeds/extract.py "$work/session.pcap" "$work/offer.sdp" fuzz/seeds
rm -rf "$work"

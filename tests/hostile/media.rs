//! Attacks on the workers' UDP ports: spoofed sources, stolen SSRCs, ICE nominations from addresses
//! that never answer, DTLS floods, random and oversized datagrams while real clients talk.

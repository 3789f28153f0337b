//! QUIC transport for gen-paxos (work in progress).
#![warn(missing_docs)]

#!/usr/bin/env bash
# paxos-core is sans-IO: its normal dependency tree must not contain a runtime, a socket
# library or TLS. (Clock reads and sleeps are caught by paxos-core/clippy.toml.)
set -euo pipefail
tree=$(cargo tree -p gen-paxos-core -e normal --prefix none --locked)
if echo "$tree" | grep -E '^(tokio|quinn|quinn-proto|rustls|mio|socket2|async-std)( |$)'; then
  echo "paxos-core must not depend on a runtime, sockets or TLS (see above)" >&2
  exit 1
fi
echo "paxos-core dependency tree is free of tokio/quinn/rustls"

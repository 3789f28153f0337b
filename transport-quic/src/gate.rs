//! Who gets a handshake: configured peers always, everyone else within bounds.
//!
//! A handshake costs the accepting node a TLS key exchange and a signature, and holds a
//! slot until it completes or times out, so never-finished handshakes are the cheapest
//! way to keep a node busy. The gate sorts incoming attempts, whose source address the
//! accept loop has already validated with a QUIC retry (a forged source never gets here):
//!
//! - an attempt from a configured peer's address takes one of that address's own
//!   [`Settings::peer_handshake_slots`], which nothing else can use;
//! - any other source needs a slot of the shared pool ([`Settings::max_handshakes`]), at
//!   most [`Settings::max_handshakes_per_ip`] of them per IP address, a token of its IP
//!   address's bucket ([`Settings::handshake_rate_per_ip`] per second) and one of the
//!   shared bucket ([`Settings::handshake_rate`] per second). A flood from a few hosts
//!   thus leaves room for everyone else; a flood from more hosts than the shared rate
//!   has tokens for can still crowd out other strangers (status clients, guests), but
//!   never a configured peer.
//!
//! What the gate turns away is ignored (no packet in answer) and counted.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Settings;

/// The slots a handshake in progress holds; dropping it frees them.
#[derive(Debug)]
pub(crate) enum Pass {
    /// From a configured peer's address.
    Peer(#[allow(dead_code)] OwnedSemaphorePermit),
    /// From anyone else.
    Other(
        #[allow(dead_code)] OwnedSemaphorePermit,
        #[allow(dead_code)] IpSlot,
    ),
}

impl Pass {
    #[cfg(test)]
    fn is_peer(&self) -> bool {
        matches!(self, Pass::Peer(_))
    }
}

/// Why an attempt was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The peer address's own slots are all in use.
    PeerBusy,
    /// The shared pool is full.
    PoolFull,
    /// This IP address has its share of the pool.
    IpBusy,
    /// Over the shared handshake rate.
    Rate,
    /// Over this IP address's handshake rate.
    IpRate,
}

/// One of an IP address's slots in the shared pool.
#[derive(Debug)]
pub(crate) struct IpSlot {
    gate: Arc<Gate>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut per_ip = self.gate.lock_per_ip();
        if let Some(state) = per_ip.get_mut(&self.ip) {
            state.handshakes = state.handshakes.saturating_sub(1);
        }
    }
}

/// One IP address's handshakes in progress and its own rate.
#[derive(Debug, Clone, Copy)]
struct IpState {
    handshakes: usize,
    tat: Instant,
}

/// A generic cell rate algorithm step: `Some(new tat)` if an attempt at `now` conforms.
fn conform(
    tat: Option<Instant>,
    now: Instant,
    interval: Duration,
    burst: Duration,
) -> Option<Instant> {
    let t = tat.map_or(now, |t| t.max(now));
    match t.checked_sub(burst) {
        Some(earliest) if earliest > now => None,
        _ => Some(t + interval),
    }
}

/// The handshake admission of one endpoint.
#[derive(Debug)]
pub(crate) struct Gate {
    /// Reserved slots by configured peer address (a peer named by host has the address it
    /// last resolved to).
    peers: Mutex<HashMap<SocketAddr, Arc<Semaphore>>>,
    peer_slots: usize,
    pool: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, IpState>>,
    per_ip_max: usize,
    ip_interval: Duration,
    ip_burst: Duration,
    /// Token bucket as a theoretical arrival time: an attempt at `now` passes if
    /// `tat - burst <= now`, and moves `tat` one interval on.
    tat: Mutex<Option<Instant>>,
    interval: Duration,
    burst: Duration,
}

impl Gate {
    pub(crate) fn new(
        peer_addrs: impl IntoIterator<Item = SocketAddr>,
        settings: &Settings,
    ) -> Self {
        let peers = peer_addrs
            .into_iter()
            .map(|a| (a, Arc::new(Semaphore::new(settings.peer_handshake_slots))))
            .collect();
        let peers = Mutex::new(peers);
        let interval = Duration::from_secs(1) / settings.handshake_rate.max(1);
        let ip_interval = Duration::from_secs(1) / settings.handshake_rate_per_ip.max(1);
        Gate {
            peers,
            peer_slots: settings.peer_handshake_slots,
            pool: Arc::new(Semaphore::new(settings.max_handshakes)),
            per_ip: Mutex::new(HashMap::new()),
            per_ip_max: settings.max_handshakes_per_ip,
            ip_interval,
            ip_burst: ip_interval
                * u32::try_from(settings.max_handshakes_per_ip).unwrap_or(u32::MAX),
            tat: Mutex::new(None),
            interval,
            burst: interval * u32::try_from(settings.max_handshakes).unwrap_or(u32::MAX),
        }
    }

    fn lock_per_ip(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, IpState>> {
        self.per_ip.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A peer named by host resolved to `new` (it was at `old`): its reserved slots move.
    pub(crate) fn move_peer(&self, old: Option<SocketAddr>, new: SocketAddr) {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = old {
            peers.remove(&old);
        }
        peers
            .entry(new)
            .or_insert_with(|| Arc::new(Semaphore::new(self.peer_slots)));
    }

    /// Whether `source` (address already validated) may start a handshake at `now`.
    pub(crate) fn admit(
        self: &Arc<Self>,
        source: SocketAddr,
        now: Instant,
    ) -> Result<Pass, Refusal> {
        let reserved = self
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&source)
            .cloned();
        if let Some(slots) = reserved {
            return slots
                .clone()
                .try_acquire_owned()
                .map(Pass::Peer)
                .map_err(|_| Refusal::PeerBusy);
        }
        let ip = source.ip();
        // One lock for the per-IP checks and the shared ones, so that admitting is one
        // decision: nothing is taken unless everything conforms.
        let mut per_ip = self.lock_per_ip();
        let mine = per_ip.get(&ip).copied();
        if mine.is_some_and(|m| m.handshakes >= self.per_ip_max) {
            return Err(Refusal::IpBusy);
        }
        let Some(ip_tat) = conform(mine.map(|m| m.tat), now, self.ip_interval, self.ip_burst)
        else {
            return Err(Refusal::IpRate);
        };
        let permit = self
            .pool
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::PoolFull)?;
        {
            let mut tat = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(next) = conform(*tat, now, self.interval, self.burst) else {
                return Err(Refusal::Rate);
            };
            *tat = Some(next);
        }
        // Entries of addresses with nothing in progress whose rate has recovered say
        // nothing any more; new entries appear at most at the shared rate, so the map
        // stays small.
        per_ip.retain(|_, s| s.handshakes > 0 || s.tat > now);
        let state = per_ip.entry(ip).or_insert(IpState {
            handshakes: 0,
            tat: now,
        });
        state.handshakes += 1;
        state.tat = ip_tat;
        drop(per_ip);
        Ok(Pass::Other(
            permit,
            IpSlot {
                gate: self.clone(),
                ip,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            max_handshakes: 6,
            max_handshakes_per_ip: 2,
            peer_handshake_slots: 1,
            handshake_rate: 10,
            ..Settings::default()
        }
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("address")
    }

    #[test]
    fn a_peer_address_has_its_own_slots() {
        let peer = addr("127.0.0.2:7002");
        let gate = Arc::new(Gate::new([peer], &settings()));
        let now = Instant::now();
        // Strangers fill the pool from three addresses.
        let mut held = Vec::new();
        for i in 0..3 {
            for _ in 0..2 {
                held.push(gate.admit(addr(&format!("127.0.0.{}:9000", 50 + i)), now));
            }
        }
        assert!(held.iter().all(Result::is_ok));
        assert_eq!(
            gate.admit(addr("127.0.0.60:9000"), now).err(),
            Some(Refusal::PoolFull)
        );
        // The peer still gets in, once at a time.
        let first = gate.admit(peer, now).expect("reserved");
        assert!(first.is_peer());
        assert_eq!(gate.admit(peer, now).err(), Some(Refusal::PeerBusy));
        drop(first);
        assert!(gate.admit(peer, now).is_ok());
    }

    #[test]
    fn one_busy_ip_is_held_to_its_own_rate_and_others_still_pass() {
        let mut s = settings();
        s.handshake_rate = 1000;
        s.max_handshakes = 64;
        let gate = Arc::new(Gate::new([], &s));
        let now = Instant::now();
        // Each attempt finishes at once (the pass is dropped): only the rate holds it.
        let passed = (0..50)
            .filter(|i| gate.admit(addr(&format!("10.0.0.9:{i}")), now).is_ok())
            .count();
        assert_eq!(passed, 3, "a burst of max_handshakes_per_ip, plus one");
        assert_eq!(
            gate.admit(addr("10.0.0.9:99"), now).err(),
            Some(Refusal::IpRate)
        );
        assert!(
            gate.admit(addr("10.0.0.10:1"), now).is_ok(),
            "another host passes"
        );
        let later = now + Duration::from_millis(100);
        assert!(
            gate.admit(addr("10.0.0.9:100"), later).is_ok(),
            "the rate refills"
        );
    }

    #[test]
    fn one_ip_gets_its_share_and_the_rate_holds() {
        let gate = Arc::new(Gate::new([], &settings()));
        let now = Instant::now();
        let a = gate.admit(addr("10.0.0.1:1"), now).expect("first");
        let b = gate.admit(addr("10.0.0.1:2"), now).expect("second");
        assert_eq!(
            gate.admit(addr("10.0.0.1:3"), now).err(),
            Some(Refusal::IpBusy)
        );
        drop((a, b));
        assert!(
            gate.admit(addr("10.0.0.1:3"), now).is_ok(),
            "slots come back"
        );
        // At one instant the bucket lets through its burst (the pool size) plus one: three
        // went above, four more now; then nothing until it refills at 10 per second.
        let passed = (0..20)
            .filter(|i| gate.admit(addr(&format!("10.0.1.{i}:1")), now).is_ok())
            .count();
        assert_eq!(passed, 4);
        let later = now + Duration::from_millis(250);
        let refilled = (0..20)
            .filter(|i| gate.admit(addr(&format!("10.0.2.{i}:1")), later).is_ok())
            .count();
        assert_eq!(refilled, 2, "two tokens in 250 ms at 10/s");
    }
}

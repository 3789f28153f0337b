//! How connections and tasks end: the QUIC application error codes this crate closes
//! connections and resets streams with, and the closing signal every task waits on.

use quinn::VarInt;
use tokio::sync::watch;

/// The transport is closing (or was dropped).
pub const CLOSING: VarInt = VarInt::from_u32(0);
/// A newer connection to the same peer replaced this one.
pub const REPLACED: VarInt = VarInt::from_u32(1);
/// The peer broke the bad-frame rule (see the crate docs).
pub const BAD_FRAMES: VarInt = VarInt::from_u32(2);
/// The peer's identity is not admitted (checked again after the handshake).
pub const NOT_ADMITTED: VarInt = VarInt::from_u32(3);
/// Too many status clients are connected.
pub const TOO_MANY_CLIENTS: VarInt = VarInt::from_u32(4);
/// A status request was refused (stream reset).
pub const REFUSED: VarInt = VarInt::from_u32(5);
/// A stream to the peer could not be opened in time.
pub const STALLED: VarInt = VarInt::from_u32(6);
/// A status client asked nothing for `client_idle_timeout`.
pub const IDLE: VarInt = VarInt::from_u32(7);

/// Completes once the transport is closing. (Never holds the watch lock across an await.)
pub(crate) async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

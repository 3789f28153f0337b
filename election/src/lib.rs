//! The gen-paxos runtime layer (work in progress): the transport trait lives here so that
//! transports can be built against it.
#![warn(missing_docs)]

pub mod transport;

pub use transport::{Delivery, Incoming, Transport};

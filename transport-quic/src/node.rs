//! [`QuicNode`]: one node of a cluster over QUIC, started in one call from the member list,
//! the certificate directory and the lease duration (given once, for both the election
//! and the transport's timeouts).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gen_paxos_core::NodeId;
use gen_paxos_election::{Election, Wire};

use crate::certs::{CaCertificate, Identity, node_file_names};
use crate::config::{Config, PeerAddr, Settings};
use crate::error::{CertError, Error};
use crate::transport::QuicTransport;

/// What can stop a [`QuicNode`] from starting. Each says which input is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// This node is in neither the voters nor the observers.
    #[error("node {0} is not among the voters or observers it was given")]
    NotAMember(NodeId),
    /// A node was listed twice.
    #[error("node {0} is listed twice")]
    ListedTwice(NodeId),
    /// An address is neither `IP:PORT` nor `HOST:PORT`, or this node's own does not
    /// resolve to an address it can listen on.
    #[error("bad address {addr:?} for node {node}: {reason}")]
    Address {
        /// The node.
        node: NodeId,
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate file is missing or unusable (see [`crate::write_cluster_certs`]).
    #[error("cannot load {path}: {source}")]
    Certs {
        /// The file.
        path: PathBuf,
        /// Why.
        source: CertError,
    },
    /// The transport could not start (the port is taken, the certificate is not the
    /// node's, ...).
    #[error("cannot start the QUIC transport: {0}")]
    Transport(#[from] Error),
    /// The election could not start (an invalid configuration, no tokio runtime, ...).
    #[error("cannot start the election: {0}")]
    Election(#[from] gen_paxos_election::Error),
    /// The data directory could not be opened.
    #[error("data directory: {0}")]
    Storage(#[from] gen_paxos_election::storage::StorageError),
}

/// Starts one node of a cluster over QUIC with mutual TLS: the same member list on every
/// node, the certificate directory `gen-paxos certs` (or [`crate::write_cluster_certs`])
/// made, and the lease duration once.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use gen_paxos_core::NodeId;
/// use gen_paxos_quic::QuicNode;
///
/// let election = QuicNode::new(NodeId(1), "/etc/gen-paxos/certs")
///     .voters([(1, "10.0.0.1:7000"), (2, "10.0.0.2:7000"), (3, "node3.internal:7000")])
///     .lease_duration(Duration::from_secs(2))
///     .start()?;
/// # let _ = election; Ok(()) }
/// ```
///
/// The node listens on its own address from the list (resolved if it is a name), or on
/// [`QuicNode::listen`]. Peers given by name are resolved at every dial.
#[derive(Debug)]
#[must_use = "a QuicNode does nothing until start()"]
pub struct QuicNode {
    id: NodeId,
    certs: PathBuf,
    voters: Vec<(NodeId, String)>,
    observers: Vec<(NodeId, String)>,
    listen: Option<SocketAddr>,
    config: gen_paxos_election::Config,
    settings: Option<Settings>,
    data_dir: Option<(PathBuf, bool)>,
}

impl QuicNode {
    /// Node `id`, with its certificates in `certs`: `ca.pem`, `node-<id>.pem` and
    /// `node-<id>.key`.
    pub fn new(id: NodeId, certs: impl Into<PathBuf>) -> QuicNode {
        QuicNode {
            id,
            certs: certs.into(),
            voters: Vec::new(),
            observers: Vec::new(),
            listen: None,
            config: gen_paxos_election::Config::new(id, Vec::new()),
            settings: None,
            data_dir: None,
        }
    }

    /// Keeps the replicated log and `ask` state in `dir`, a data directory made once by
    /// [`QuicNode::init_data_dir`] (restarting with it recovers the state). A missing or
    /// emptied directory is refused ([`StartError::Storage`]): a node that lost its data
    /// must not answer as an acceptor as if new. Without one, replicated leases and `ask`
    /// are refused.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some((dir.into(), false));
        self
    }

    /// Makes `dir` the data directory of a node new to its cluster (refused if it holds
    /// data already), on its first start only.
    pub fn init_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some((dir.into(), true));
        self
    }

    /// The voters, this node among them unless it is an observer: `(id, "IP:PORT")` or
    /// `(id, "HOST:PORT")`. Every node of a cluster must list the same voters.
    pub fn voters<A: AsRef<str>>(mut self, voters: impl IntoIterator<Item = (u64, A)>) -> Self {
        self.voters.extend(
            voters
                .into_iter()
                .map(|(id, a)| (NodeId(id), a.as_ref().to_string())),
        );
        self
    }

    /// Observers: nodes that learn who is master and receive broadcasts, never vote.
    pub fn observers<A: AsRef<str>>(
        mut self,
        observers: impl IntoIterator<Item = (u64, A)>,
    ) -> Self {
        self.observers.extend(
            observers
                .into_iter()
                .map(|(id, a)| (NodeId(id), a.as_ref().to_string())),
        );
        self
    }

    /// The lease duration `D_P` (default 1 s): sets the election's timing and the
    /// transport's timeouts together.
    pub fn lease_duration(mut self, lease: Duration) -> Self {
        self.config = self.config.with_lease_duration(lease);
        self
    }

    /// Listen here rather than on this node's own address in the list (e.g. `0.0.0.0:7000`
    /// behind a NAT or in a container).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Changes anything else of the election's configuration (priorities' jitter, cluster
    /// name, a one-voter cluster, ...). Voters, observers and the node id come from this
    /// builder.
    pub fn configure(mut self, edit: impl FnOnce(&mut gen_paxos_election::Config)) -> Self {
        edit(&mut self.config);
        self
    }

    /// Replaces the transport's settings (by default [`Settings::for_lease`] of the lease
    /// duration).
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = Some(settings);
        self
    }

    /// Binds the transport and starts the election. Must be called inside a tokio
    /// runtime; join leases on the returned [`Election`].
    pub fn start(self) -> Result<Election, StartError> {
        let data_dir = self.data_dir.clone();
        let (transport, config) = self.transport()?;
        match data_dir {
            Some((dir, init)) => {
                let storage = if init {
                    gen_paxos_election::storage::DiskStorage::create(dir)?
                } else {
                    gen_paxos_election::storage::DiskStorage::open(dir)?
                };
                Ok(Election::start_with_storage(config, transport, storage)?)
            }
            None => Ok(Election::start(config, transport)?),
        }
    }

    /// Binds the transport and returns it with the election configuration, for callers
    /// that need the transport itself (its [`QuicTransport::stats_handle`] or
    /// [`QuicTransport::client_requests`]) before [`Election::start`].
    pub fn transport(
        self,
    ) -> Result<(QuicTransport<Wire>, gen_paxos_election::Config), StartError> {
        let mut members = Vec::new();
        for (id, addr) in self.voters.iter().chain(&self.observers) {
            if members.iter().any(|(m, _)| m == id) {
                return Err(StartError::ListedTwice(*id));
            }
            let parsed: PeerAddr = addr.parse().map_err(|reason| StartError::Address {
                node: *id,
                addr: addr.clone(),
                reason,
            })?;
            members.push((*id, parsed));
        }
        let own = members
            .iter()
            .find(|(id, _)| *id == self.id)
            .map(|(_, a)| a.clone())
            .ok_or(StartError::NotAMember(self.id))?;
        let listen = match self.listen {
            Some(addr) => addr,
            None => own_address(self.id, &own)?,
        };
        let (cert, key) = node_file_names(self.id);
        let load = |name: &str| self.certs.join(name);
        let identity =
            Identity::load(&load(&cert), &load(&key)).map_err(|source| StartError::Certs {
                path: load(&cert),
                source,
            })?;
        let ca = CaCertificate::load(&load("ca.pem")).map_err(|source| StartError::Certs {
            path: load("ca.pem"),
            source,
        })?;
        let mut config = self.config;
        config.voters = self.voters.iter().map(|(id, _)| *id).collect();
        config.observers = self.observers.iter().map(|(id, _)| *id).collect();
        // Before binding: a configuration the election refuses must not hold the port.
        config
            .validate()
            .map_err(|e| StartError::Election(e.into()))?;
        let settings = self.settings.unwrap_or_else(|| {
            let settings = Settings::for_lease(config.lease_duration);
            match self.data_dir {
                Some(_) => settings.carrying_snapshots(),
                None => settings,
            }
        });
        let mut quic = Config::new(self.id, listen, identity, ca).with_settings(settings);
        for (id, addr) in members.into_iter().filter(|(id, _)| *id != self.id) {
            quic = quic.with_peer_addr(id, addr);
        }
        Ok((QuicTransport::bind(quic)?, config))
    }
}

/// The address this node listens on: its own entry, resolved now if it is a name.
fn own_address(id: NodeId, addr: &PeerAddr) -> Result<SocketAddr, StartError> {
    let bad = |reason: String| StartError::Address {
        node: id,
        addr: addr.to_string(),
        reason,
    };
    let found = addr.resolve_blocking().map_err(|e| bad(e.to_string()))?;
    found
        .first()
        .copied()
        .ok_or_else(|| bad("it resolves to no address".to_string()))
}

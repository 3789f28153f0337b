//! `gen-paxos node`: one node of a real cluster over QUIC, printing its events as JSON lines.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use clap::Args;
use gen_paxos_election::{Candidacy, Election, Leader, LeaseInfo, NodeId, SurrenderInfo, Wire};
use gen_paxos_quic::{PeerAddr, QuicTransport, Settings};
use serde::Deserialize;
use tokio::io::AsyncBufReadExt;
use tracing::info;

use super::common::{complain, load_identity, missing, notice, parse_duration, parse_peer};

/// Arguments of `gen-paxos node`. Every setting may also come from `--config FILE` (TOML,
/// same names with underscores; flags win).
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// This node's id (it must match its certificate, node-<id>.pem).
    #[arg(long)]
    pub id: Option<u64>,
    /// UDP address to listen on, e.g. 127.0.0.1:7001.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Another voter, as ID=ADDR (repeat for each).
    #[arg(long = "peer", value_parser = parse_peer)]
    pub peers: Vec<(NodeId, PeerAddr)>,
    /// An observer node (learns, never votes), as ID=ADDR. Every node must list the same
    /// voters and observers.
    #[arg(long = "observer-peer", value_parser = parse_peer)]
    pub observer_peers: Vec<(NodeId, PeerAddr)>,
    /// Directory with ca.pem and node-<id>.pem/.key (see `gen-paxos certs`).
    #[arg(long)]
    pub certs: Option<PathBuf>,
    /// A lease to stand for (repeat for several). Default: `default`.
    #[arg(long = "lease")]
    pub leases: Vec<String>,
    /// Lease duration, e.g. 2s or 500ms. Must be the same on every node. Default 2s.
    #[arg(long, value_parser = parse_duration)]
    pub lease_duration: Option<Duration>,
    /// This node is an observer: it learns who is master but never votes or stands.
    #[arg(long)]
    pub observer: bool,
    /// Candidate priority, 0 to 3 (default 3): a lower one waits one jitter step longer per
    /// level for a free lease; give less preferred nodes a lower one.
    #[arg(long)]
    pub priority: Option<u8>,
    /// Run as a cluster of one voter (no --peer). Refused without it: a node meant to join
    /// others but started without its peers would elect itself, a second master.
    #[arg(long)]
    pub single_node: bool,
    /// A name for the cluster, part of its fingerprint: nodes with different names refuse
    /// each other. Must be the same on every node (default: none).
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// A TOML file with the same settings.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Read `resign [NAME]` commands from stdin (off by default: use `gen-paxos resign`).
    #[arg(long)]
    pub stdin_commands: bool,
    /// Serve /metrics (Prometheus text), /healthz and /readyz over HTTP on this address,
    /// e.g. 127.0.0.1:9101 (off by default).
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// Keep the replicated log and `ask` state in this directory (one per node; restarting
    /// with the same directory recovers it). Without it, `--kv` and `ask` are refused.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Make --data-dir the data directory of a node new to its cluster (first start only;
    /// refused if it holds data). Without it, a missing or emptied --data-dir is refused:
    /// a node that lost its data must not answer as an acceptor as if new.
    #[arg(long)]
    pub init_data_dir: bool,
    /// Run the built-in replicated key-value store (lease `kv`; needs --data-dir), used with
    /// `gen-paxos kv`.
    #[arg(long)]
    pub kv: bool,
    /// Client connections (`status`, `kv`, `ask`, ...) served at once; more are refused.
    /// Default 8, or 256 with --kv (each client connection may have 64 requests in flight
    /// with --kv, 4 without).
    #[arg(long)]
    pub max_clients: Option<usize>,
    /// Print no `renewed` line per renewal, and publish no renewal event inside the node
    /// (the other events still print; renewals are counted as `gen_paxos_renewals` on
    /// --metrics). For nodes holding thousands of leases, where a line per renewal costs
    /// more than the renewal.
    #[arg(long)]
    pub quiet_renewals: bool,
    /// Renew with Prepare and Accept (two round trips) instead of Accept alone (P7 of
    /// docs/PROTOCOL.md): twice the messages per renewal, for comparison.
    #[arg(long)]
    pub two_round_renewals: bool,
    /// Never give leases up to shed load (reason `overload`): an overloaded node keeps
    /// trying to renew everything it holds, and may lose all of it at once.
    #[arg(long)]
    pub no_load_shedding: bool,
    /// Test-only: scale this node's local clock rate (e.g. 1.0005), to emulate clock-rate
    /// error in fault tests. Beyond `rho` (0.1%) the lease guarantee is void.
    #[arg(long, hide = true)]
    pub clock_rate_for_tests: Option<f64>,
}

/// The TOML form of [`NodeArgs`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    id: Option<u64>,
    listen: Option<SocketAddr>,
    #[serde(default)]
    peers: BTreeMap<u64, String>,
    #[serde(default)]
    observer_peers: BTreeMap<u64, String>,
    certs: Option<PathBuf>,
    #[serde(default)]
    leases: Vec<String>,
    lease_duration: Option<String>,
    #[serde(default)]
    observer: bool,
    priority: Option<u8>,
    #[serde(default)]
    single_node: bool,
    cluster_name: Option<String>,
    metrics: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    kv: bool,
    max_clients: Option<usize>,
    #[serde(default)]
    quiet_renewals: bool,
    #[serde(default)]
    two_round_renewals: bool,
    #[serde(default)]
    no_load_shedding: bool,
}

/// The settings of one node, from flags and file.
#[derive(Debug)]
struct Settled {
    id: NodeId,
    listen: SocketAddr,
    peers: Vec<(NodeId, PeerAddr)>,
    observer_peers: Vec<(NodeId, PeerAddr)>,
    certs: PathBuf,
    leases: Vec<String>,
    lease_duration: Duration,
    observer: bool,
    priority: u8,
    single_node: bool,
    cluster_name: Option<String>,
    metrics: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    kv: bool,
    max_clients: Option<usize>,
    quiet_renewals: bool,
    two_round_renewals: bool,
    no_load_shedding: bool,
}

fn settle(args: &NodeArgs) -> Result<Settled> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str::<NodeFile>(&text)
                .with_context(|| format!("{} is not a valid node configuration", path.display()))?
        }
        None => NodeFile::default(),
    };
    let pairs = |flags: &[(NodeId, PeerAddr)],
                 file: &BTreeMap<u64, String>|
     -> Result<Vec<(NodeId, PeerAddr)>> {
        if flags.is_empty() {
            file.iter()
                .map(|(&id, a)| {
                    let addr = a.parse::<PeerAddr>().map_err(anyhow::Error::msg);
                    Ok((NodeId(id), addr.context("a peer in --config")?))
                })
                .collect()
        } else {
            Ok(flags.to_vec())
        }
    };
    let lease_duration = match (args.lease_duration, &file.lease_duration) {
        (Some(d), _) => d,
        (None, Some(text)) => parse_duration(text).context("lease_duration in --config")?,
        (None, None) => Duration::from_secs(2),
    };
    let priority = args
        .priority
        .or(file.priority)
        .unwrap_or(gen_paxos_core::MAX_PRIORITY);
    if priority > gen_paxos_core::MAX_PRIORITY {
        bail!(
            "--priority must be 0 to {}, got {priority}",
            gen_paxos_core::MAX_PRIORITY
        );
    }
    let mut leases = if args.leases.is_empty() {
        file.leases
    } else {
        args.leases.clone()
    };
    if leases.is_empty() {
        leases.push("default".into());
    }
    let max_clients = args.max_clients.or(file.max_clients);
    if max_clients == Some(0) {
        bail!("--max-clients must be at least 1 (status and resign are clients too)");
    }
    Ok(Settled {
        id: NodeId(args.id.or(file.id).ok_or_else(|| missing("--id"))?),
        listen: args
            .listen
            .or(file.listen)
            .ok_or_else(|| missing("--listen"))?,
        peers: pairs(&args.peers, &file.peers)?,
        observer_peers: pairs(&args.observer_peers, &file.observer_peers)?,
        certs: args
            .certs
            .clone()
            .or(file.certs)
            .ok_or_else(|| missing("--certs"))?,
        leases,
        lease_duration,
        observer: args.observer || file.observer,
        priority,
        single_node: args.single_node || file.single_node,
        cluster_name: args.cluster_name.clone().or(file.cluster_name),
        metrics: args.metrics.or(file.metrics),
        data_dir: args.data_dir.clone().or(file.data_dir),
        kv: args.kv || file.kv,
        max_clients,
        quiet_renewals: args.quiet_renewals || file.quiet_renewals,
        two_round_renewals: args.two_round_renewals || file.two_round_renewals,
        no_load_shedding: args.no_load_shedding || file.no_load_shedding,
    })
}

/// Refuses peer lists that cannot be right: two ids at one address (messages for one would
/// reach the other, which refuses them), or a peer at this node's own address.
fn check_addresses(s: &Settled) -> Result<()> {
    let mut seen: BTreeMap<PeerAddr, NodeId> = BTreeMap::new();
    seen.insert(PeerAddr::Socket(s.listen), s.id);
    for (id, addr) in s.peers.iter().chain(&s.observer_peers) {
        let id = *id;
        if let Some(other) = seen.insert(addr.clone(), id)
            && other != id
        {
            if other == s.id {
                bail!("peer {id} is given this node's own address {addr}");
            }
            bail!(
                "peers {other} and {id} are both given the address {addr}: every node needs its own"
            );
        }
    }
    Ok(())
}

/// The tool's `Leader`: it holds no state of its own; what happens is printed from the
/// node's event stream.
#[derive(Debug)]
struct Announcer;

#[async_trait]
impl Leader for Announcer {
    type Message = ();

    async fn on_elected(&mut self, lease: &LeaseInfo) -> Option<()> {
        info!(lease = %lease.name, token = %lease.token, "elected");
        None
    }

    async fn on_surrendered(&mut self, info: SurrenderInfo<()>) {
        info!(lease = %info.lease, reason = %info.reason, "not master");
    }
}

/// How this process gives a lease up when asked (a `resign` request, a stdin command)
/// and before it shuts down: a plain node resigns at once; `gen-paxos run` stops its
/// command first, so the command is gone before the lease is released.
#[async_trait]
pub trait Resign: Send + Sync {
    /// Resigns `lease`: whether this node was master, or why it could not.
    async fn resign(&self, lease: &str) -> Result<bool, String>;
    /// Called once before the node shuts down and releases its leases.
    async fn before_shutdown(&self) {}
}

/// A plain node's [`Resign`].
#[derive(Debug)]
pub struct ResignAtOnce(pub Election);

#[async_trait]
impl Resign for ResignAtOnce {
    async fn resign(&self, lease: &str) -> Result<bool, String> {
        self.0.resign(lease).await.map_err(|e| e.to_string())
    }
}

/// A node that runs: its election, its leases, and what the tool attached to it.
pub struct Started {
    pub election: Election,
    pub id: NodeId,
    pub leases: Vec<String>,
    pub observer: bool,
    pub priority: u8,
    status_requests: Option<gen_paxos_quic::ClientRequests>,
    printer: tokio::task::JoinHandle<()>,
    listen: SocketAddr,
    /// The built-in key-value store, once joined (`--kv`).
    kv: Option<super::kv_store::KvService>,
    kv_wanted: bool,
}

/// Runs the node until SIGTERM or SIGINT; then releases its leases and returns.
pub async fn run(args: &NodeArgs) -> Result<()> {
    let mut node = start(args).await?;
    node.join_all(|_| Announcer).await?;
    node.join_kv().await?;
    let resigner: Arc<dyn Resign> = Arc::new(ResignAtOnce(node.election.clone()));
    node.serve_requests(resigner.clone());
    node.wait_and_stop(args.stdin_commands, resigner, None)
        .await?;
    Ok(())
}

/// Starts the transport and the election of the node `args` describe (not joined yet).
pub async fn start(args: &NodeArgs) -> Result<Started> {
    let s = settle(args)?;
    if s.peers
        .iter()
        .chain(&s.observer_peers)
        .any(|(id, _)| *id == s.id)
    {
        bail!("node {} lists itself as a peer", s.id);
    }
    check_addresses(&s)?;
    let (identity, ca) = load_identity(&s.certs, Some(s.id))?;
    let mut voters: Vec<NodeId> = s.peers.iter().map(|(id, _)| *id).collect();
    let mut observers: Vec<NodeId> = s.observer_peers.iter().map(|(id, _)| *id).collect();
    if s.observer {
        observers.push(s.id)
    } else {
        voters.push(s.id)
    }
    if voters.len() == 1 && !s.single_node {
        bail!(
            "node {} would be the only voter: a one-voter cluster elects itself without asking \
             anyone, so a node started without its peers would be a second master. List the other \
             voters with --peer ID=ADDR, or pass --single-node if a cluster of one is meant",
            voters[0]
        );
    }
    let mut config = gen_paxos_election::Config::new(s.id, voters)
        .with_observers(observers)
        .with_lease_duration(s.lease_duration);
    config.single_node = s.single_node;
    config.cluster_name = s.cluster_name.clone();
    config.clock_rate = args.clock_rate_for_tests;
    config.one_round_renewals = Some(!s.two_round_renewals);
    config.shed_load = Some(!s.no_load_shedding);
    // Quiet renewals print no line per renewal: do not publish one either.
    config.renewal_events = Some(!s.quiet_renewals);
    config.validate().context("invalid cluster configuration")?;

    let mut settings = Settings::for_lease(s.lease_duration);
    settings.accept_clients = true;
    if s.kv {
        // A key-value store has many clients, each with several requests in flight.
        settings.max_client_connections = 256;
        settings.max_client_streams = 64;
        settings.client_queue_len = 4096;
    }
    if let Some(max) = s.max_clients {
        settings.max_client_connections = max;
    }
    if s.data_dir.is_some() {
        settings = settings.carrying_snapshots();
    }
    let mut quic =
        gen_paxos_quic::Config::new(s.id, s.listen, identity, ca).with_settings(settings);
    for (id, addr) in s.peers.iter().chain(&s.observer_peers) {
        quic = quic.with_peer_addr(*id, addr.clone());
    }
    let transport = QuicTransport::<Wire>::bind(quic)
        .with_context(|| format!("cannot start node {} on {}", s.id, s.listen))?;
    let status_requests = transport.client_requests();
    let transport_stats = transport.stats_handle();
    if s.kv && s.data_dir.is_none() {
        bail!("--kv keeps its log in a data directory: give --data-dir DIR");
    }
    let election = match &s.data_dir {
        Some(dir) => {
            let storage = if args.init_data_dir {
                gen_paxos_election::storage::DiskStorage::create(dir)
            } else {
                gen_paxos_election::storage::DiskStorage::open(dir)
            }
            .with_context(|| format!("cannot use --data-dir {}", dir.display()))?;
            Election::start_with_storage(config, transport, storage)
        }
        None => Election::start(config, transport),
    }
    .context("cannot start the election")?;
    if election.storage_failed() {
        complain(&format!(
            "node {}: the data directory cannot be trusted (see the error above): the leases work, the log and ask do not on this node",
            s.id
        ));
    }
    if let Some(addr) = s.metrics {
        super::http::serve(addr, election.clone(), transport_stats)?;
    }
    let printer = tokio::spawn(super::event_output::print_events(
        s.id,
        election.events(),
        !s.quiet_renewals,
    ));
    Ok(Started {
        election,
        id: s.id,
        leases: s.leases,
        observer: s.observer,
        priority: s.priority,
        status_requests,
        printer,
        listen: s.listen,
        kv: None,
        kv_wanted: s.kv,
    })
}

impl Started {
    /// Joins every lease, with the `Leader` that `make` returns for it.
    pub async fn join_all<L, F>(&mut self, make: F) -> Result<()>
    where
        L: Leader<Message = ()>,
        F: Fn(&str) -> L,
    {
        let candidacy = if self.observer {
            Candidacy::Observer
        } else {
            Candidacy::with_priority(self.priority)
        };
        for name in &self.leases {
            self.election
                .join(name, make(name), candidacy)
                .await
                .with_context(|| format!("cannot join lease {name:?}"))?;
        }
        Ok(())
    }

    /// Joins the built-in key-value store's lease, if asked (`--kv`).
    pub async fn join_kv(&mut self) -> Result<()> {
        if !self.kv_wanted {
            return Ok(());
        }
        let candidacy = if self.observer {
            Candidacy::Observer
        } else {
            Candidacy::with_priority(self.priority)
        };
        let service = super::kv_store::KvService::default();
        let lease = self
            .election
            .join_replicated(
                super::kv_store::KV_LEASE,
                service.leader(),
                candidacy,
                super::kv_store::KvStore::default(),
            )
            .await
            .context("cannot join the kv store's lease")?;
        service.attach(lease);
        self.kv = Some(service);
        Ok(())
    }

    /// Answers `status` and `resign` from the tool.
    pub fn serve_requests(&mut self, resigner: Arc<dyn Resign>) {
        if let Some(requests) = self.status_requests.take() {
            super::control::serve(
                requests,
                self.election.clone(),
                self.leases.clone(),
                resigner,
                self.kv.clone(),
            );
        }
        notice(&format!(
            "node {} listening on {}, leases {:?}",
            self.id, self.listen, self.leases
        ));
    }

    /// Waits for SIGTERM, SIGINT or `stop` (if given), then releases every lease (after
    /// `resigner`'s `before_shutdown`) and lets the event printer finish.
    pub async fn wait_and_stop(
        self,
        stdin_commands: bool,
        resigner: Arc<dyn Resign>,
        stop: Option<tokio::sync::oneshot::Receiver<()>>,
    ) -> Result<()> {
        wait_for_stop(&*resigner, &self.leases, stdin_commands, stop).await?;
        resigner.before_shutdown().await;
        self.election.shutdown().await;
        // Let the printer write the surrenders of the shutdown before exiting.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.printer).await;
        Ok(())
    }
}

/// Waits for SIGTERM or SIGINT (or `stop`), serving `resign [NAME]` lines on stdin
/// meanwhile if asked to (`--stdin-commands`). Stdin is left alone otherwise: a node
/// started in the background of an interactive shell must not read the terminal (the
/// shell would stop it, "Stopped (tty input)").
async fn wait_for_stop(
    resigner: &dyn Resign,
    leases: &[String],
    stdin_commands: bool,
    stop: Option<tokio::sync::oneshot::Receiver<()>>,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = stdin_commands;
    let stop = async move {
        match stop {
            Some(rx) => {
                let _ = rx.await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            () = &mut stop => return Ok(()),
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => command(resigner, leases, line.trim()).await,
                Ok(None) | Err(_) => stdin_open = false,
            },
        }
    }
}

async fn command(resigner: &dyn Resign, leases: &[String], line: &str) {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (None, ..) => {}
        (Some("resign"), name, None) => {
            let names: Vec<&str> = match name {
                Some(n) => vec![n],
                None => leases.iter().map(String::as_str).collect(),
            };
            for name in names {
                match resigner.resign(name).await {
                    Ok(was_master) => info!(lease = name, was_master, "resigned"),
                    Err(e) => complain(&format!("cannot resign {name:?}: {e}")),
                }
            }
        }
        _ => complain(&format!("unknown command {line:?} (try: resign [NAME])")),
    }
}

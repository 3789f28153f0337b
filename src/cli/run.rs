//! `gen-paxos run [node options] -- CMD ARGS...`: a node that runs a command while it is
//! master of its lease, like `etcdctl lock NAME -- cmd`.
//!
//! - **Start**: when elected, the command starts (through `gen-paxos supervise`, in a
//!   process group of its own) with `GEN_PAXOS_TOKEN` (the fencing token as
//!   `COUNTER.INCARNATION.NODE`, compared as three integers), `GEN_PAXOS_LEASE` and
//!   `GEN_PAXOS_NODE` in its environment.
//! - **Stop on surrender**: when authority ends (the lease could not be renewed), the
//!   group gets SIGTERM at once and SIGKILL half a surrender margin later, still before
//!   the lease's deadline, after which another node may be elected. When another master
//!   was seen (`lost`) or a voter's configuration differs, SIGKILL at once.
//! - **Stop before handing over**: `gen-paxos resign`, SIGTERM/SIGINT of the node and the
//!   command's own exit first stop the command (SIGTERM, then SIGKILL if it has not exited
//!   within `--stop-timeout` or before authority ends), and only then release the lease.
//! - **No orphans**: if the node dies, even by SIGKILL, the supervisor sees its pipe
//!   close and kills the whole group; the command's main process also carries a
//!   parent-death signal (util-linux `setpriv`).
//! - **The command exits by itself** while master: `--on-exit resign` (default) hands the
//!   lease over and stands again; `--on-exit stop` shuts the node down, and `run` exits
//!   with the command's status.
//!
//! Not covered, as for every lease: a node paused (SIGSTOP, a VM freeze) past its deadline
//! while its command keeps running. The fencing token is for that.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use async_trait::async_trait;
use clap::{Args, ValueEnum};
use gen_paxos_election::{
    Ballot, Election, Leader, LeaseInfo, NodeId, SurrenderInfo, SurrenderReason,
};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tokio::sync::{Mutex, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use super::common::{complain, notice};
use super::node::{NodeArgs, Resign, start};

/// What to do when the command exits by itself while this node is master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnExit {
    /// Resign the lease (another candidate takes over) and stand again.
    Resign,
    /// Shut the node down; `run` exits with the command's status.
    Stop,
}

/// Arguments of `gen-paxos run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// When the command exits by itself while master: `resign` (default) or `stop`.
    #[arg(long, value_enum, default_value_t = OnExit::Resign)]
    pub on_exit: OnExit,
    /// How long a stopping command may take after SIGTERM before SIGKILL, when the node
    /// hands the lease over (resign, SIGTERM of the node); never past the end of
    /// authority.
    #[arg(long, value_parser = super::common::parse_duration, default_value = "5s")]
    pub stop_timeout: Duration,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// The running command of one tenure.
struct Running {
    child: Child,
    orders: ChildStdin,
    token: Ballot,
}

/// What the node's `Leader`, its `Resign` and the exit watcher share.
struct Runner {
    election: Election,
    node: NodeId,
    lease: String,
    command: Vec<String>,
    /// Between the end of authority and the lease's deadline: the surrender margin.
    margin: Duration,
    stop_timeout: Duration,
    on_exit: OnExit,
    running: Mutex<Option<Running>>,
    /// Set once the node is stopping: no command starts any more.
    stopping: std::sync::atomic::AtomicBool,
    stop_node: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    exit_code: AtomicU8,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

fn token_env(token: Ballot) -> String {
    let [counter, incarnation, node] = token.to_array();
    format!("{counter}.{incarnation}.{node}")
}

impl Runner {
    /// Starts the command for the tenure of `token`.
    async fn start(self: &Arc<Self>, token: Ballot) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let mut slot = self.running.lock().await;
        if slot.is_some() {
            return;
        }
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                complain(&format!(
                    "cannot find this program to supervise the command: {e}"
                ));
                return;
            }
        };
        let spawned = tokio::process::Command::new(exe)
            .arg("supervise")
            .arg("--")
            .args(&self.command)
            .env("GEN_PAXOS_TOKEN", token_env(token))
            .env("GEN_PAXOS_LEASE", &self.lease)
            .env("GEN_PAXOS_NODE", self.node.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .kill_on_drop(false)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                complain(&format!("cannot start the command: {e}"));
                return;
            }
        };
        let Some(orders) = child.stdin.take() else {
            complain("the command's supervisor has no stdin");
            return;
        };
        info!(lease = %self.lease, %token, pid = child.id(), "command started");
        *slot = Some(Running {
            child,
            orders,
            token,
        });
        drop(slot);
        let me = self.clone();
        tokio::spawn(async move { me.watch(token).await });
    }

    /// Waits for the command of tenure `token` to exit and applies `--on-exit` if it did so
    /// by itself.
    async fn watch(self: Arc<Self>, token: Ballot) {
        loop {
            let exited = {
                let mut slot = self.running.lock().await;
                let Some(r) = slot.as_mut().filter(|r| r.token == token) else {
                    return;
                };
                r.child.try_wait().ok().flatten()
            };
            if let Some(status) = exited {
                let mut slot = self.running.lock().await;
                if slot.as_ref().is_some_and(|r| r.token == token) {
                    *slot = None;
                    drop(slot);
                    self.exited_by_itself(status.code().unwrap_or(1)).await;
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn exited_by_itself(&self, code: i32) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let code = u8::try_from(code).unwrap_or(1);
        match self.on_exit {
            OnExit::Resign => {
                notice(&format!(
                    "the command exited ({code}) while master: resigning {}",
                    self.lease
                ));
                if let Err(e) = self.election.resign(&self.lease).await {
                    warn!(error = %e, "cannot resign after the command exited");
                }
            }
            OnExit::Stop => {
                notice(&format!(
                    "the command exited ({code}) while master: stopping the node"
                ));
                self.exit_code.store(code, Ordering::Release);
                if let Some(tx) = self
                    .stop_node
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take()
                {
                    let _ = tx.send(());
                }
            }
        }
    }

    /// Stops the command (SIGTERM, then SIGKILL at `kill_at`) and waits for it to be gone.
    async fn stop(&self, kill_at: Instant) {
        let Some(mut r) = self.running.lock().await.take() else {
            return;
        };
        let _ = r.orders.write_all(b"term\n").await;
        let _ = r.orders.flush().await;
        if tokio::time::timeout_at(kill_at, r.child.wait())
            .await
            .is_err()
        {
            warn!(lease = %self.lease, "the command did not stop after SIGTERM: SIGKILL");
            let _ = r.orders.write_all(b"kill\n").await;
            let _ = r.orders.flush().await;
            let _ = r.child.wait().await;
        }
        info!(lease = %self.lease, token = %r.token, "command stopped");
    }

    /// Stops the command without waiting: SIGTERM now and SIGKILL at `kill_at` (at once if
    /// that has passed). For the `Leader` callback, which must return quickly.
    fn stop_soon(self: &Arc<Self>, kill_at: Instant) {
        let me = self.clone();
        tokio::spawn(async move { me.stop(kill_at).await });
    }

    /// Before the lease is released: the command is stopped, within `stop_timeout` and
    /// before authority ends (the current tenure's deadline, renewals included).
    async fn stop_before_release(&self) {
        if self.running.lock().await.is_none() {
            return;
        }
        let now = Instant::now();
        let authority = self
            .election
            .master(&self.lease)
            .filter(|m| m.exact && m.node == self.node)
            .map_or(now, |m| m.expires);
        self.stop((now + self.stop_timeout).min(authority)).await;
    }
}

/// The `Leader` of a `run` node: starts and stops the command with the tenure.
struct Tenure(Arc<Runner>);

impl std::fmt::Debug for Tenure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[async_trait]
impl Leader for Tenure {
    type Message = ();

    async fn on_elected(&mut self, lease: &LeaseInfo) -> Option<()> {
        // Callbacks can run late: never start a command after authority has ended.
        if lease.guard.is_valid() {
            self.0.start(lease.token).await;
        }
        None
    }

    async fn on_surrendered(&mut self, info: SurrenderInfo<()>) {
        let now = Instant::now();
        let kill_at = match info.reason {
            // Authority ran out: no other master before the lease's deadline, a margin
            // later; SIGKILL half-way.
            SurrenderReason::Expired => now + self.0.margin / 2,
            // Not master, never was this tenure.
            SurrenderReason::OtherElected => return,
            // Another master exists, a voter runs otherwise, or the lease was released
            // (the tool stops the command first; anything still running goes now).
            _ => now,
        };
        self.0.stop_soon(kill_at);
    }
}

#[async_trait]
impl Resign for Arc<Runner> {
    async fn resign(&self, lease: &str) -> Result<bool, String> {
        if lease == self.lease {
            self.stop_before_release().await;
        }
        self.election.resign(lease).await.map_err(|e| e.to_string())
    }

    async fn before_shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop_before_release().await;
    }
}

/// Runs the node and its command; returns the exit code (the command's with
/// `--on-exit stop`).
pub async fn run(args: &RunArgs) -> Result<u8> {
    if args.command.is_empty() {
        bail!("give the command after --, e.g. gen-paxos run ... -- ./serve --port 8080");
    }
    if args.node.observer {
        bail!("an observer never becomes master: `run` needs a candidate");
    }
    let mut node = start(&args.node).await?;
    if node.leases.len() != 1 {
        bail!(
            "`run` runs one command for one lease; got leases {:?} (give one --lease)",
            node.leases
        );
    }
    if !super::supervise::setpriv_available() {
        warn!(
            "util-linux setpriv not found: the command's main process has no parent-death signal (the supervisor still stops its group when the node goes)"
        );
    }
    let (stop_tx, stop_rx) = oneshot::channel();
    let runner = Arc::new(Runner {
        election: node.election.clone(),
        node: node.id,
        lease: node.leases[0].clone(),
        command: args.command.clone(),
        margin: node.election.config().surrender_margin(),
        stop_timeout: args.stop_timeout,
        on_exit: args.on_exit,
        running: Mutex::new(None),
        stopping: std::sync::atomic::AtomicBool::new(false),
        stop_node: std::sync::Mutex::new(Some(stop_tx)),
        exit_code: AtomicU8::new(0),
    });
    let leader = runner.clone();
    node.join_all(move |_| Tenure(leader.clone())).await?;
    node.join_kv().await?;
    let resigner: Arc<dyn Resign> = Arc::new(runner.clone());
    node.serve_requests(resigner.clone());
    node.wait_and_stop(args.node.stdin_commands, resigner, Some(stop_rx))
        .await?;
    Ok(runner.exit_code.load(Ordering::Acquire))
}

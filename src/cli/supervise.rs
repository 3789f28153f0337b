//! `gen-paxos supervise -- CMD...` (hidden; started by `gen-paxos run`): keeps one command
//! and everything it starts inside one process group, and takes the group down when told
//! to, or when the node that started it is gone.
//!
//! Its stdin is a pipe from the node: a line `term` sends SIGTERM to the group, `kill`
//! SIGKILL; end of file (the node exited, or was killed: the kernel closes the pipe) sends
//! SIGKILL. When the command's main process exits, whatever is left of its group is
//! killed too, and the supervisor exits with the command's status. The main process is
//! started through util-linux `setpriv --pdeathsig KILL` when available, so it also dies
//! if the supervisor itself is killed.

use std::io::BufRead;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use clap::Args;
use rustix::process::{Pid, Signal, kill_process_group};

/// Arguments of `gen-paxos supervise`.
#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Whether util-linux `setpriv` can set a parent-death signal here.
pub fn setpriv_available() -> bool {
    Command::new("setpriv")
        .arg("--help")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--pdeathsig"))
}

/// Runs the command under supervision; returns its exit code.
pub fn run(args: &SuperviseArgs) -> Result<u8> {
    let Some((program, rest)) = args.command.split_first() else {
        bail!("supervise needs a command");
    };
    let mut command = if setpriv_available() {
        let mut c = Command::new("setpriv");
        c.args(["--pdeathsig", "KILL", "--"])
            .arg(program)
            .args(rest);
        c
    } else {
        let mut c = Command::new(program);
        c.args(rest);
        c
    };
    let child = command
        .process_group(0)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {program:?}"))?;
    let group = Pid::from_child(&child);
    // Orders from the node, on another thread: the main thread, which started the
    // command, must live as long as it (the parent-death signal follows the thread).
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line.as_deref().map(str::trim) {
                Ok("term") => {
                    let _ = kill_process_group(group, Signal::TERM);
                }
                Ok("kill") => {
                    let _ = kill_process_group(group, Signal::KILL);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        // The node is gone (or closed the pipe): nothing may keep acting.
        let _ = kill_process_group(group, Signal::KILL);
    });
    let mut child = child;
    let status = child.wait().context("cannot wait for the command")?;
    // The main process is gone; so must be anything it started.
    let _ = kill_process_group(group, Signal::KILL);
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    })
}

/// For `main`: the exit code of [`run`].
pub fn exit(args: &SuperviseArgs) -> ExitCode {
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            super::common::complain(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

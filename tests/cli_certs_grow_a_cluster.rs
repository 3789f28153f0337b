//! `gen-paxos certs --add-node` and `--add-client` sign with the cluster's existing CA and
//! never rewrite it, so a node or a tool can join a running cluster.

mod procs;

use std::process::Command;
use std::time::Duration;

use procs::{BIN, Proc, free_addr, temp_dir, within};

fn certs(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("certs")
        .args(args)
        .output()
        .expect("run certs")
}

#[test]
fn added_certificates_come_from_the_same_ca_which_is_never_rewritten() {
    let dir = temp_dir("grow");
    let out = dir.to_str().expect("utf8");
    assert!(certs(&["--nodes", "1,2,3", "--out", out]).status.success());
    let ca = |name: &str| std::fs::read(dir.join(name)).expect("CA file");
    let (ca_pem, ca_key) = (ca("ca.pem"), ca("ca.key"));

    let added = certs(&["--add-node", "4", "--add-client", "ops", "--out", out]);
    assert!(added.status.success(), "{added:?}");
    let text = String::from_utf8_lossy(&added.stdout);
    for file in [
        "node-4.pem",
        "node-4.key",
        "client-ops.pem",
        "client-ops.key",
    ] {
        assert!(text.contains(file), "{text}");
        assert!(dir.join(file).exists());
    }
    assert_eq!(
        (ca("ca.pem"), ca("ca.key")),
        (ca_pem.clone(), ca_key.clone())
    );

    // Again: refused, in one line, and nothing is touched.
    let node4 = std::fs::read(dir.join("node-4.pem")).expect("node-4.pem");
    let again = certs(&["--add-node", "4", "--out", out]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("node-4") && err.contains("the CA is kept"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        std::fs::read(dir.join("node-4.pem")).expect("node-4.pem"),
        node4
    );
    // --force replaces node 4's files, never the CA.
    assert!(
        certs(&["--add-node", "4", "--force", "--out", out])
            .status
            .success()
    );
    assert_ne!(
        std::fs::read(dir.join("node-4.pem")).expect("node-4.pem"),
        node4
    );
    assert_eq!((ca("ca.pem"), ca("ca.key")), (ca_pem, ca_key));

    // Without a CA there is nothing to add to.
    let empty = temp_dir("grow-empty");
    let none = certs(&["--add-node", "5", "--out", empty.to_str().expect("utf8")]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("ca.key"));

    // The added node runs with its certificate, and the added client can ask it.
    let addr = free_addr();
    let node = Proc::start(
        4,
        &addr,
        &dir,
        &[
            "--single-node".into(),
            "--lease-duration".into(),
            "300ms".into(),
        ],
    );
    let mut code = None;
    assert!(
        within(Duration::from_secs(10), || {
            let out = Command::new(BIN)
                .args([
                    "status",
                    "--client",
                    "ops",
                    "--peer",
                    &format!("4={addr}"),
                    "--certs",
                    out,
                ])
                .output()
                .expect("status");
            code = out.status.code();
            code == Some(0)
        }),
        "status with client-ops.pem: last exit {code:?}"
    );
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&empty);
}

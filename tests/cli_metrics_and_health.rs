//! `gen-paxos node --metrics ADDR`: `/metrics` parsed as Prometheus text (with a parser, not
//! by searching strings), `/healthz` and `/readyz` following what the cluster does; `status`
//! reporting the load, and paging through many leases.

mod procs;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use procs::{BIN, Proc, free_addr, make_certs, serial, status, temp_dir, within};

/// `GET path` on `addr`: (status code, body). The request is the smallest HTTP/1.1 one.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// The samples of a scrape, by metric name and label set.
fn scrape(addr: &str) -> HashMap<(String, Vec<(String, String)>), f64> {
    let (code, body) = get(addr, "/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    parsed
        .samples
        .into_iter()
        .map(|s| {
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                // A histogram by its count (its `+Inf` bucket).
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.last().map_or(0.0, |b| b.count)
                }
                other => panic!("unexpected value {other:?}"),
            };
            ((s.metric, labels), value)
        })
        .collect()
}

fn lease(name: &str) -> Vec<(String, String)> {
    vec![("lease".to_string(), name.to_string())]
}

#[test]
fn metrics_health_and_readiness_follow_the_cluster() {
    let _serial = serial();
    let certs = temp_dir("metrics");
    make_certs(&certs, "1,2,3");
    let addrs: Vec<String> = (0..3).map(|_| free_addr()).collect();
    let http: Vec<String> = (0..3)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp port");
            l.local_addr().expect("addr").to_string()
        })
        .collect();
    let mut nodes: Vec<Proc> = (1..=3u64)
        .map(|id| {
            let mut args = vec![
                "--lease-duration".to_string(),
                "1s".to_string(),
                "--metrics".to_string(),
                http[id as usize - 1].clone(),
            ];
            for p in (1..=3u64).filter(|&p| p != id) {
                args.push("--peer".into());
                args.push(format!("{p}={}", addrs[p as usize - 1]));
            }
            Proc::start(id, &addrs[id as usize - 1], &certs, &args)
        })
        .collect();
    assert!(within(Duration::from_secs(10), || nodes
        .iter()
        .any(Proc::holds)));
    // Every node knows the master and has heard its peers.
    assert!(within(Duration::from_secs(5), || {
        http.iter().all(|h| {
            get(h, "/readyz").is_some_and(|(c, _)| c == 200)
                && get(h, "/healthz").is_some_and(|(c, _)| c == 200)
        })
    }));
    std::thread::sleep(Duration::from_millis(700));
    let scrapes: Vec<_> = http.iter().map(|h| scrape(h)).collect();
    let master_gauges: Vec<f64> = scrapes
        .iter()
        .map(|s| s[&("gen_paxos_lease_master".to_string(), lease("default"))])
        .collect();
    assert_eq!(
        master_gauges.iter().filter(|&&v| v == 1.0).count(),
        1,
        "{master_gauges:?}"
    );
    assert_eq!(
        master_gauges.iter().filter(|&&v| v == 0.0).count(),
        2,
        "{master_gauges:?}"
    );
    let m = master_gauges
        .iter()
        .position(|&v| v == 1.0)
        .expect("a master");
    let s = &scrapes[m];
    let one = |name: &str| s[&(name.to_string(), vec![])];
    assert_eq!(one("gen_paxos_leases_held"), 1.0);
    assert_eq!(
        s[&(
            "gen_paxos_lease_elections_total".to_string(),
            lease("default")
        )],
        1.0
    );
    assert!(one("gen_paxos_renewals_total") >= 1.0, "renewals counted");
    assert!(
        one("gen_paxos_driver_turn_seconds") >= 1.0,
        "the driver's turns timed"
    );
    assert_eq!(one("gen_paxos_voters_reachable"), 3.0);
    assert_eq!(one("gen_paxos_in_conflict"), 0.0);
    assert!(one("gen_paxos_transport_sent_datagrams_total") > 0.0);
    for s in &scrapes {
        assert_eq!(
            s[&("gen_paxos_lease_master_known".to_string(), lease("default"))],
            1.0
        );
    }
    // Counters only grow.
    let later = scrape(&http[m]);
    assert!(
        later[&("gen_paxos_messages_sent_total".to_string(), vec![])]
            >= one("gen_paxos_messages_sent_total")
    );

    // Two nodes go: the third keeps serving, but is neither healthy nor ready.
    let last = (0..3).find(|&i| i != m).expect("a follower");
    for i in (0..3).filter(|&i| i != last) {
        nodes[i].kill();
    }
    assert!(
        within(Duration::from_secs(6), || {
            get(&http[last], "/healthz").is_some_and(|(c, _)| c == 503)
                && get(&http[last], "/readyz").is_some_and(|(c, _)| c == 503)
        }),
        "healthz/readyz still 200 without a majority"
    );
    let (_, body) = get(&http[last], "/readyz").expect("readyz");
    assert!(body.contains("default"), "{body}");
    let s = scrape(&http[last]);
    assert_eq!(
        s[&("gen_paxos_lease_master_known".to_string(), lease("default"))],
        0.0
    );
    assert!(
        s[&(
            "gen_paxos_lease_no_master_seconds_total".to_string(),
            lease("default")
        )] > 0.0
    );
    assert_eq!(get(&http[last], "/nope").map(|(c, _)| c), Some(404));
    let _ = std::fs::remove_dir_all(&certs);
}

/// `--quiet-renewals`: the node prints its election but no `renewed` line, and the
/// renewals are still counted on /metrics; without the flag the same node prints them.
#[test]
fn quiet_renewals_leave_renewed_lines_out_and_count_them_on_metrics() {
    let _serial = serial();
    let certs = temp_dir("quiet-renewals");
    make_certs(&certs, "1");
    for quiet in [true, false] {
        let http = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("tcp port")
            .to_string();
        let mut args = vec![
            "--single-node".to_string(),
            "--lease-duration".to_string(),
            "300ms".to_string(),
            "--metrics".to_string(),
            http.clone(),
        ];
        if quiet {
            args.push("--quiet-renewals".to_string());
        }
        let node = Proc::start(1, &free_addr(), &certs, &args);
        assert!(within(Duration::from_secs(10), || {
            get(&http, "/metrics").is_some()
                && scrape(&http)[&("gen_paxos_renewals_total".to_string(), vec![])] >= 5.0
        }));
        assert_eq!(node.events("elected").len(), 1, "quiet {quiet}");
        // Status reports what the node holds and holds back (nothing is waiting here).
        let load = &status(&certs, &node).expect("status")["load"];
        assert_eq!(load["held"], 1, "{load}");
        assert_eq!(load["deferred"], 0, "{load}");
        assert_eq!(load["attempt_rate_cuts"], 0, "{load}");
        assert!(
            load["attempt_rate"].as_u64().is_some_and(|r| r > 0),
            "{load}"
        );
        let printed = node.events("renewed").len();
        if quiet {
            assert_eq!(printed, 0, "no renewed line with --quiet-renewals");
        } else {
            assert!(
                within(Duration::from_secs(5), || node.events("renewed").len() >= 5),
                "renewed lines without the flag"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&certs);
}

/// `status` asks a node with many leases page by page, and `--summary` gives the counts
/// alone: the same leases, in name order, whatever the page size.
#[test]
fn status_pages_through_every_lease_and_summarizes_them() {
    let _serial = serial();
    let certs = temp_dir("status-pages");
    make_certs(&certs, "1");
    let names = ["e", "a", "d", "b", "c"];
    let mut args = vec![
        "--single-node".to_string(),
        "--lease-duration".to_string(),
        "300ms".to_string(),
    ];
    for n in names {
        args.extend(["--lease".to_string(), n.to_string()]);
    }
    let node = Proc::start(1, &free_addr(), &certs, &args);
    assert!(within(Duration::from_secs(10), || node
        .events("elected")
        .len()
        == names.len()));
    let ask = |extra: &[&str]| {
        let out = Command::new(BIN)
            .args(["status", "--json", "--peer", &format!("1={}", node.addr)])
            .arg("--certs")
            .arg(&certs)
            .args(extra)
            .output()
            .expect("status runs");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        (out.status.code(), json)
    };
    for page in ["1", "2", "5", "100"] {
        let (code, json) = ask(&["--page-size", page]);
        assert_eq!(code, Some(0), "{json}");
        let listed: Vec<&str> = json["leases"]
            .as_array()
            .expect("leases")
            .iter()
            .map(|l| l["lease"].as_str().expect("name"))
            .collect();
        assert_eq!(listed, ["a", "b", "c", "d", "e"], "page size {page}");
        assert_eq!(
            (json["joined"].as_u64(), json["with_master"].as_u64()),
            (Some(5), Some(5))
        );
    }
    let (code, json) = ask(&["--summary"]);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["leases"].as_array().map(Vec::len), Some(0), "{json}");
    assert_eq!(
        (json["joined"].as_u64(), json["with_master"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(json["load"]["held"], 5, "{json}");
    let _ = std::fs::remove_dir_all(&certs);
}

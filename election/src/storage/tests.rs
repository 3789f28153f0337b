//! The write-ahead log on a real directory: records come back in order across reopening, a
//! write cut short at the end is dropped, anything else that does not check out is refused,
//! a checkpoint replaces the files atomically, and a failed write is final.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use gen_paxos_core::LeaseName;
use gen_paxos_core::log::{LogBallot, Value};

use super::*;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gen-paxos-storage-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

fn accepted(slot: u64, text: &str) -> Record {
    Record::Accepted {
        lease: LeaseName::new("db").expect("valid"),
        slot,
        ballot: LogBallot {
            counter: 1,
            node: gen_paxos_core::NodeId(1),
        },
        value: Value::Data(text.as_bytes().into()),
    }
}

fn only_segment(d: &PathBuf) -> PathBuf {
    let mut files: Vec<PathBuf> = fs::read_dir(d)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 1, "{files:?}");
    files.remove(0)
}

#[test]
fn records_come_back_in_order_after_reopening() {
    let d = dir("roundtrip");
    let mut s = DiskStorage::create(&d).expect("create");
    assert!(s.load().expect("empty").is_empty());
    s.append(&[accepted(0, "a"), accepted(1, "b")])
        .expect("append");
    s.append(&[accepted(2, "c")]).expect("append");
    let size = s.size().expect("known");
    let mut again = DiskStorage::open(&d).expect("reopen");
    let records = again.load().expect("load");
    assert_eq!(
        records,
        vec![accepted(0, "a"), accepted(1, "b"), accepted(2, "c")]
    );
    assert_eq!(again.size(), Some(size));
    again
        .append(&[accepted(3, "d")])
        .expect("append after reopening");
    let mut third = DiskStorage::open(&d).expect("reopen");
    assert_eq!(third.load().expect("load").len(), 4);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn a_write_cut_short_at_the_end_is_dropped_and_said() {
    let d = dir("torn");
    let mut s = DiskStorage::create(&d).expect("create");
    s.load().expect("load");
    s.append(&[accepted(0, "a"), accepted(1, "b")])
        .expect("append");
    // A crash in the middle of the next write: half a frame reached the file.
    let mut frame = Vec::new();
    super::frame::encode(&accepted(2, "c"), &mut frame).expect("encode");
    let path = only_segment(&d);
    let mut f = OpenOptions::new().append(true).open(&path).expect("open");
    f.write_all(&frame[..frame.len() / 2]).expect("write");
    drop(f);
    let mut again = DiskStorage::open(&d).expect("reopen");
    assert_eq!(
        again.load().expect("load"),
        vec![accepted(0, "a"), accepted(1, "b")]
    );
    assert_eq!(
        again.dropped_torn_tail().map(|t| t.0),
        Some(frame.len() as u64 / 2)
    );
    // The file was cut: the next append follows the last whole record.
    again.append(&[accepted(2, "c")]).expect("append");
    let mut third = DiskStorage::open(&d).expect("reopen");
    assert_eq!(third.load().expect("load").len(), 3);
    assert!(third.dropped_torn_tail().is_none());
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn a_corrupt_record_is_refused_with_where_it_is() {
    let d = dir("corrupt");
    let mut s = DiskStorage::create(&d).expect("create");
    s.load().expect("load");
    s.append(&[
        accepted(0, "first"),
        accepted(1, "second"),
        accepted(2, "third"),
    ])
    .expect("append");
    let path = only_segment(&d);
    let mut bytes = fs::read(&path).expect("read");
    // Flip a bit inside the second record's value.
    let at = bytes
        .windows(6)
        .position(|w| w == b"second")
        .expect("the value is in the file");
    bytes[at] ^= 0x01;
    fs::write(&path, &bytes).expect("write");
    let err = DiskStorage::open(&d)
        .expect("reopen")
        .load()
        .expect_err("refused");
    let line = err.to_string();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{line}");
    assert!(
        line.contains("checksum mismatch") && line.contains("refusing"),
        "{line}"
    );
    assert!(!line.contains('\n'), "one line: {line}");
    // Not a log file at all.
    fs::write(&path, b"hello, world").expect("write");
    let err = DiskStorage::open(&d)
        .expect("reopen")
        .load()
        .expect_err("refused");
    assert!(
        err.to_string().contains("not a gen-paxos log file"),
        "{err}"
    );
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn a_checkpoint_replaces_every_file_and_a_half_written_one_is_ignored() {
    let d = dir("rewrite");
    let mut s = DiskStorage::create(&d).expect("create");
    s.load().expect("load");
    for slot in 0..100 {
        s.append(&[accepted(slot, "an entry of some length")])
            .expect("append");
    }
    let before = s.size().expect("known");
    s.rewrite(&[accepted(99, "an entry of some length")])
        .expect("rewrite");
    assert!(
        s.size().expect("known") * 50 < before,
        "{:?} vs {before}",
        s.size()
    );
    s.append(&[accepted(100, "after")]).expect("append");
    // A crash while writing the next checkpoint leaves a temporary file behind.
    fs::write(d.join("00000000000000000009.wal.tmp"), b"partial").expect("write");
    let mut again = DiskStorage::open(&d).expect("reopen");
    assert_eq!(
        again.load().expect("load"),
        vec![
            accepted(99, "an entry of some length"),
            accepted(100, "after")
        ]
    );
    let _ = only_segment(&d);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn a_failed_write_is_final_and_a_record_too_large_is_refused_alone() {
    let d = dir("full");
    let mut s = DiskStorage::create(&d).expect("create");
    s.load().expect("load");
    let huge = Record::Snapshot {
        lease: LeaseName::new("db").expect("valid"),
        upto: 1,
        data: Arc::from(vec![0u8; super::frame::MAX_RECORD_LEN + 1]),
    };
    assert!(matches!(
        s.append(&[huge]),
        Err(StorageError::TooLarge { .. })
    ));
    s.append(&[accepted(0, "a")]).expect("still takes writes");
    // The disk fills up: appends now go to /dev/full.
    let full = OpenOptions::new()
        .append(true)
        .open("/dev/full")
        .expect("open /dev/full");
    s.current = Some((full, 1));
    let err = s.append(&[accepted(1, "b")]).expect_err("the disk is full");
    assert!(matches!(err, StorageError::Io { op: "write", .. }), "{err}");
    let err = s.append(&[accepted(2, "c")]).expect_err("final");
    assert!(matches!(err, StorageError::Failed(_)), "{err}");
    assert!(s.rewrite(&[]).is_err());
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn memory_storage_is_shared_between_clones_and_can_fail() {
    let mut a = MemoryStorage::new();
    let b = a.clone();
    a.append(&[accepted(0, "a")]).expect("append");
    assert_eq!(b.records(), vec![accepted(0, "a")]);
    assert_eq!(b.appends(), 1);
    b.fail_writes();
    assert!(a.append(&[accepted(1, "b")]).is_err());
    assert_eq!(a.clone().load().expect("load").len(), 1);
}

#[test]
fn an_emptied_or_missing_directory_is_refused_and_create_refuses_data() {
    let d = dir("emptied");
    assert!(matches!(
        DiskStorage::open(&d),
        Err(StorageError::NotInitialized { .. })
    ));
    let mut s = DiskStorage::create(&d).expect("create");
    s.load().expect("load");
    s.append(&[accepted(0, "a")]).expect("append");
    assert!(matches!(
        DiskStorage::create(&d),
        Err(StorageError::AlreadyInitialized { .. })
    ));
    // Someone empties the directory: the node must not start as if it were new.
    for entry in fs::read_dir(&d).expect("list") {
        fs::remove_file(entry.expect("entry").path()).expect("remove");
    }
    let err = DiskStorage::open(&d).expect_err("refused");
    let line = err.to_string();
    assert!(
        line.contains("holds no gen-paxos data") && !line.contains('\n'),
        "{line}"
    );
    let _ = fs::remove_dir_all(&d);
}

//! The `gen-paxos` command-line tool (placeholder until the CLI issue lands).
fn main() {
    println!("gen-paxos: the demo lands with the CLI issue; run the simulator meanwhile");
}

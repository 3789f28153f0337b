//! Section 10: the exhaustive model checker over the real core. Its runs take up to 30
//! minutes, so the benchmark does not repeat them: the section is copied from
//! docs/model-checking.md (between its `results` markers), where the commands and the
//! commit of each run are.

use std::fmt::Write as _;

const BEGIN: &str = "<!-- results:begin -->";
const END: &str = "<!-- results:end -->";

pub(super) fn section(w: &mut String) {
    let _ = writeln!(
        w,
        "## 10. Model checking the real core (exhaustive, bounded)\n"
    );
    let path = crate::bench::repo_root().join("docs/model-checking.md");
    match std::fs::read_to_string(&path) {
        Ok(text) => match results(&text) {
            Some(block) => {
                let _ = writeln!(
                    w,
                    "Copied from [docs/model-checking.md](docs/model-checking.md), which has the model, the commands and the commit of each run (the benchmark does not repeat them).\n\n{}\n",
                    block.trim()
                );
            }
            None => {
                let _ = writeln!(w, "docs/model-checking.md has no `{BEGIN}` block.\n");
            }
        },
        Err(e) => {
            let _ = writeln!(w, "Could not read {}: {e}\n", path.display());
        }
    }
}

/// The text between the markers, if both are there in order.
fn results(text: &str) -> Option<&str> {
    let start = text.find(BEGIN)? + BEGIN.len();
    let len = text[start..].find(END)?;
    Some(&text[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_between_the_markers_is_copied() {
        let doc = format!("intro\n{BEGIN}\n| a | b |\n{END}\nrest");
        assert_eq!(results(&doc).map(str::trim), Some("| a | b |"));
        assert_eq!(results("no markers"), None);
        assert_eq!(results(&format!("{END} {BEGIN}")), None);
    }
}

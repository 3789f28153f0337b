//! A fixed opening for a search ([`super::CheckConfig::opening`]): the history starts with
//! steps named by what they do, and the bound counts the steps after them.
//!
//! Histories that need a second term over an entry only some acceptors hold are 25 to
//! 35 steps long; searching every history to that depth is out of reach, while the state
//! after the first term (a master, its log ready) is reached by many orders of the same
//! steps. An opening walks to one such state, and the search is exhaustive from there.

use super::world::{Action, Context, World};

impl Context {
    /// Takes the opening's steps from `world`: each is the first enabled step whose
    /// one-line description (as in a trace) contains the text. Returns the steps taken
    /// (fewer if one ended in a violation), or what was enabled where no step matched.
    pub(super) fn open(
        &self,
        world: &mut World,
        opening: &[String],
    ) -> Result<Vec<Action>, String> {
        let mut taken = Vec::with_capacity(opening.len());
        let mut lines = Vec::with_capacity(opening.len());
        for (i, text) in opening.iter().enumerate() {
            if world.violation.is_some() {
                break; // The search reports it, with the steps taken so far.
            }
            let enabled = self.enabled(world);
            let Some(action) = enabled
                .iter()
                .find(|a| self.describe(world, a).contains(text.as_str()))
                .copied()
            else {
                let options: Vec<String> = enabled
                    .iter()
                    .map(|a| format!("  {}", self.describe(world, a)))
                    .collect();
                return Err(format!(
                    "opening step {} ({text:?}) matches no enabled step; after\n{}\nenabled:\n{}",
                    i + 1,
                    lines.join("\n"),
                    options.join("\n")
                ));
            };
            lines.push(format!("  {}. {}", i + 1, self.describe(world, &action)));
            self.apply(world, &action);
            // What it led to, when tracing (the first note repeats the description).
            lines.extend(world.notes.iter().skip(1).map(|n| format!("    {n}")));
            taken.push(action);
        }
        Ok(taken)
    }
}

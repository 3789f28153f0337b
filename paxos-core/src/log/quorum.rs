//! Sets of voters as bits, for the log's and `ask`'s quorums: a voter's index in the sorted
//! voter list is its bit (a configuration has at most 64 voters).

/// The bit of the voter at `index`.
pub(crate) fn bit(index: usize) -> u64 {
    1u64 << (index % 64)
}

/// How many voters are in `set`.
pub(crate) fn voters_in(set: u64) -> usize {
    set.count_ones() as usize
}

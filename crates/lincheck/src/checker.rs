//! The linearizability checker: Wing & Gong's search with Lowe's memoization, as Porcupine
//! implements it, run on each key alone (a history is linearizable exactly when each key's
//! sub-history is — P-compositionality).
//!
//! The search walks the call and return events in time order. A call that comes before the
//! first remaining return may take effect next: if the register model accepts it, it is
//! lifted out of the list and the search goes on; a return reached first means the operations
//! chosen so far cannot be ordered, so the last choice is undone. Each (set of lifted
//! operations, register state) is tried once.
//!
//! Failed operations had no effect and are dropped; unknown reads constrain nothing and are
//! dropped; unknown writes have no return (they may take effect at any instant after their
//! call) and need not take effect at all.
//!
//! Unknown plain writes whose value no read returned are interchangeable: such a write can
//! only matter by bumping the version (a read right after it would have returned its value),
//! and an earlier-invoked one can take its place anywhere. So only the earliest-invoked of
//! them not yet placed is ever tried, which keeps a history with many timed-out writes (every
//! fault makes some) from branching exponentially.

use std::collections::{BTreeMap, HashSet};

use crate::history::{Input, Operation, Outcome, Output};
use crate::register::Register;

/// The checker's answer for a whole history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's operations can be ordered consistently with real time and the model.
    Linearizable,
    /// One key's operations cannot.
    NotLinearizable(Violation),
    /// The search for `key` reached the step budget before deciding.
    Inconclusive {
        /// The key whose search was cut off.
        key: String,
    },
}

/// Where the search for a key got furthest before every ordering failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: String,
    /// Ids of the operations of the longest consistent ordering found, in that order.
    pub longest_prefix: Vec<usize>,
    /// Id of the operation that returned before any ordering could place it.
    pub stuck: usize,
}

/// Checks every key of `history`, spending at most `budget` search steps per key.
pub fn check(history: &[Operation], budget: u64) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    for (key, ops) in by_key {
        match check_key(&ops, budget) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::Violation {
                longest_prefix,
                stuck,
            } => {
                return Verdict::NotLinearizable(Violation {
                    key: key.to_owned(),
                    longest_prefix,
                    stuck,
                })
            }
            KeyVerdict::OutOfBudget => return Verdict::Inconclusive { key: key.to_owned() },
        }
    }
    Verdict::Linearizable
}

enum KeyVerdict {
    Linearizable,
    Violation {
        longest_prefix: Vec<usize>,
        stuck: usize,
    },
    OutOfBudget,
}

/// An operation as the search sees it.
struct Candidate {
    id: usize,
    input: Input,
    /// `None`: the answer was lost.
    output: Option<Output>,
    /// An unknown plain write whose value nobody read (see the module doc).
    interchangeable: bool,
}

/// A node of the doubly linked event list; index 0 is the head.
#[derive(Clone, Copy)]
struct Event {
    /// The candidate this event belongs to.
    op: usize,
    is_call: bool,
    /// For a call, the index of its return event (0: none).
    partner: usize,
    prev: usize,
    next: usize,
}

/// Fixed-size bit set of lifted candidates, the memo key together with the state.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Lifted(Vec<u64>);

impl Lifted {
    fn flip(&mut self, i: usize) {
        self.0[i / 64] ^= 1 << (i % 64);
    }
}

fn check_key(ops: &[&Operation], budget: u64) -> KeyVerdict {
    let observed: HashSet<u64> = ops
        .iter()
        .filter_map(|op| match op.outcome {
            Outcome::Ok {
                output: Output::Read { value, .. },
                ..
            } => value,
            _ => None,
        })
        .collect();
    let mut candidates = Vec::new();
    // (time, is_return, candidate): calls sort before returns at the same instant, which
    // lets operations that touch in time take effect in either order.
    let mut times = Vec::new();
    for op in ops {
        let (output, returned) = match op.outcome {
            Outcome::Fail => continue,
            Outcome::Unknown if op.input == Input::Read => continue,
            Outcome::Unknown => (None, None),
            Outcome::Ok { returned, output } => (Some(output), Some(returned)),
        };
        let c = candidates.len();
        let interchangeable = match op.input {
            Input::Write { value } => output.is_none() && !observed.contains(&value),
            Input::Read | Input::Cas { .. } => false,
        };
        candidates.push(Candidate {
            id: op.id,
            input: op.input,
            output,
            interchangeable,
        });
        times.push((op.invoke, false, c));
        if let Some(returned) = returned {
            times.push((returned.max(op.invoke), true, c));
        }
    }
    times.sort_unstable();
    // Interchangeable writes in the order they may be placed: by invoke time.
    let interchangeable: Vec<usize> = times
        .iter()
        .filter(|&&(_, is_return, c)| !is_return && candidates[c].interchangeable)
        .map(|&(_, _, c)| c)
        .collect();
    let mut interchangeable_placed = 0;
    let required = candidates.iter().filter(|c| c.output.is_some()).count();

    let mut events = vec![Event {
        op: 0,
        is_call: false,
        partner: 0,
        prev: 0,
        next: 0,
    }];
    let mut call_event = vec![0; candidates.len()];
    for &(_, is_return, c) in &times {
        let index = events.len();
        let prev = index - 1;
        events[prev].next = index;
        if is_return {
            events[call_event[c]].partner = index;
        } else {
            call_event[c] = index;
        }
        events.push(Event {
            op: c,
            is_call: !is_return,
            partner: 0,
            prev,
            next: 0,
        });
    }
    let end = 0; // `next == 0` marks the end of the list.

    let mut lifted = Lifted(vec![0; candidates.len().div_ceil(64)]);
    let mut seen: HashSet<(Lifted, Register)> = HashSet::new();
    let mut state = Register::default();
    // (call event lifted, state before it)
    let mut chosen: Vec<(usize, Register)> = Vec::new();
    let mut lifted_required = 0;
    let mut longest: (Vec<usize>, usize) = (Vec::new(), 0);
    let mut steps = 0u64;
    let mut entry = events[0].next;

    loop {
        if lifted_required == required {
            return KeyVerdict::Linearizable;
        }
        steps += 1;
        if steps > budget {
            return KeyVerdict::OutOfBudget;
        }
        let blocked = entry == end || !events[entry].is_call;
        if !blocked {
            let c = events[entry].op;
            if candidates[c].interchangeable && interchangeable.get(interchangeable_placed) != Some(&c) {
                entry = events[entry].next;
                continue;
            }
            let next_state = state.step(candidates[c].input, candidates[c].output);
            if let Some(next_state) = next_state {
                lifted.flip(c);
                if seen.insert((lifted.clone(), next_state)) {
                    chosen.push((entry, state));
                    state = next_state;
                    lifted_required += usize::from(candidates[c].output.is_some());
                    interchangeable_placed += usize::from(candidates[c].interchangeable);
                    lift(&mut events, entry);
                    entry = events[0].next;
                    continue;
                }
                lifted.flip(c);
            }
            entry = events[entry].next;
            continue;
        }
        if chosen.len() >= longest.0.len() && entry != end {
            longest = (
                chosen.iter().map(|&(e, _)| candidates[events[e].op].id).collect(),
                candidates[events[entry].op].id,
            );
        }
        let Some((undone, before)) = chosen.pop() else {
            let (longest_prefix, stuck) = longest;
            return KeyVerdict::Violation {
                longest_prefix,
                stuck,
            };
        };
        let c = events[undone].op;
        lifted.flip(c);
        lifted_required -= usize::from(candidates[c].output.is_some());
        interchangeable_placed -= usize::from(candidates[c].interchangeable);
        state = before;
        unlift(&mut events, undone);
        entry = events[undone].next;
    }
}

/// Removes a call and its return from the list (their own links stay for `unlift`).
fn lift(events: &mut [Event], call: usize) {
    let Event {
        prev, next, partner, ..
    } = events[call];
    events[prev].next = next;
    events[next].prev = prev;
    if partner != 0 {
        let Event { prev, next, .. } = events[partner];
        events[prev].next = next;
        events[next].prev = prev;
    }
}

/// Puts back what `lift` removed, in reverse order.
fn unlift(events: &mut [Event], call: usize) {
    let partner = events[call].partner;
    if partner != 0 {
        let Event { prev, next, .. } = events[partner];
        events[prev].next = partner;
        events[next].prev = partner;
    }
    let Event { prev, next, .. } = events[call];
    events[prev].next = call;
    events[next].prev = call;
}

#[cfg(test)]
mod tests;

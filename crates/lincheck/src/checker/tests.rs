//! Known linearizable and non-linearizable histories; each fails if the checker is wrong in
//! either direction.

use super::*;

const BUDGET: u64 = 1_000_000;

/// Builds a history one operation at a time; times are plain numbers.
#[derive(Default)]
struct History(Vec<Operation>);

impl History {
    fn push(&mut self, key: &str, input: Input, invoke: u64, outcome: Outcome) -> &mut Self {
        let id = self.0.len();
        self.0.push(Operation {
            id,
            client: id,
            key: key.to_owned(),
            input,
            invoke,
            outcome,
        });
        self
    }

    fn write(&mut self, value: u64, span: (u64, u64), version: u64) -> &mut Self {
        self.push(
            "k",
            Input::Write { value },
            span.0,
            ok(span.1, Output::Written { version }),
        )
    }

    fn read(&mut self, span: (u64, u64), version: u64, value: Option<u64>) -> &mut Self {
        self.push(
            "k",
            Input::Read,
            span.0,
            ok(span.1, Output::Read { version, value }),
        )
    }

    fn unknown_write(&mut self, value: u64, invoke: u64) -> &mut Self {
        self.push("k", Input::Write { value }, invoke, Outcome::Unknown)
    }

    fn verdict(&self) -> Verdict {
        check(&self.0, BUDGET)
    }
}

fn ok(returned: u64, output: Output) -> Outcome {
    Outcome::Ok { returned, output }
}

fn stuck_on(verdict: Verdict) -> usize {
    match verdict {
        Verdict::NotLinearizable(v) => v.stuck,
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn the_empty_history_is_linearizable() {
    assert_eq!(History::default().verdict(), Verdict::Linearizable);
}

#[test]
fn sequential_writes_and_reads_of_the_latest_value_are_linearizable() {
    let mut h = History::default();
    h.read((0, 1), 0, None)
        .write(1, (2, 3), 1)
        .read((4, 5), 1, Some(1))
        .write(2, (6, 7), 2)
        .read((8, 9), 2, Some(2));
    assert_eq!(h.verdict(), Verdict::Linearizable);
}

#[test]
fn a_stale_read_after_a_newer_write_returned_is_not_linearizable() {
    let mut h = History::default();
    h.write(1, (0, 10), 1)
        .write(2, (20, 30), 2)
        .read((40, 50), 1, Some(1));
    assert_eq!(stuck_on(h.verdict()), 2);
}

#[test]
fn a_read_overlapping_a_write_may_see_either_value() {
    for (version, value) in [(0, None), (1, Some(1))] {
        let mut h = History::default();
        h.write(1, (0, 100), 1).read((10, 20), version, value);
        assert_eq!(h.verdict(), Verdict::Linearizable, "read saw {value:?}");
    }
}

#[test]
fn reads_must_not_go_back_in_time_while_a_write_is_in_flight() {
    // The first read sees the new value, a later one the old: no single instant for the write.
    let mut h = History::default();
    h.write(1, (0, 100), 1)
        .read((10, 20), 1, Some(1))
        .read((30, 40), 0, None);
    assert_eq!(stuck_on(h.verdict()), 2);
}

#[test]
fn a_lost_acknowledged_write_is_not_linearizable() {
    let mut h = History::default();
    h.write(1, (0, 10), 1).read((20, 30), 0, None);
    assert_eq!(stuck_on(h.verdict()), 1);
}

#[test]
fn an_unknown_write_may_appear_later_or_never() {
    let mut appears = History::default();
    appears
        .unknown_write(1, 0)
        .read((50, 60), 0, None)
        .read((70, 80), 1, Some(1));
    assert_eq!(appears.verdict(), Verdict::Linearizable);

    let mut never = History::default();
    never
        .unknown_write(1, 0)
        .read((50, 60), 0, None)
        .write(2, (70, 80), 1);
    assert_eq!(never.verdict(), Verdict::Linearizable);
}

#[test]
fn an_unknown_write_cannot_take_effect_before_it_was_invoked() {
    let mut h = History::default();
    h.read((0, 10), 1, Some(1)).unknown_write(1, 20);
    assert_eq!(stuck_on(h.verdict()), 0);
}

#[test]
fn an_unknown_write_that_appeared_cannot_disappear_again() {
    let mut h = History::default();
    h.unknown_write(1, 0)
        .read((10, 20), 1, Some(1))
        .read((30, 40), 0, None);
    assert_eq!(stuck_on(h.verdict()), 2);
}

#[test]
fn an_unknown_write_explains_a_version_gap() {
    let mut h = History::default();
    h.write(1, (0, 10), 1).unknown_write(2, 20).write(3, (30, 40), 3);
    assert_eq!(h.verdict(), Verdict::Linearizable);

    let mut without = History::default();
    without.write(1, (0, 10), 1).write(3, (30, 40), 3);
    assert_eq!(stuck_on(without.verdict()), 1);
}

#[test]
fn a_failed_write_must_never_be_seen() {
    let mut h = History::default();
    h.push("k", Input::Write { value: 1 }, 0, Outcome::Fail)
        .read((10, 20), 1, Some(1));
    assert_eq!(stuck_on(h.verdict()), 1);
}

#[test]
fn unknown_reads_constrain_nothing() {
    let mut h = History::default();
    h.write(1, (0, 10), 1)
        .push("k", Input::Read, 20, Outcome::Unknown);
    assert_eq!(h.verdict(), Verdict::Linearizable);
}

#[test]
fn concurrent_writes_may_take_effect_in_either_order() {
    for (first, second) in [(1, 2), (2, 1)] {
        let mut h = History::default();
        h.write(1, (0, 100), if first == 1 { 1 } else { 2 })
            .write(2, (10, 90), if first == 2 { 1 } else { 2 })
            .read((200, 210), 2, Some(second));
        assert_eq!(h.verdict(), Verdict::Linearizable, "{first} then {second}");
    }
    // Both orders are possible, but the versions fix one: reading the other is stale.
    let mut h = History::default();
    h.write(1, (0, 100), 1)
        .write(2, (10, 90), 2)
        .read((200, 210), 2, Some(1));
    assert_eq!(stuck_on(h.verdict()), 2);
}

#[test]
fn two_writes_cannot_both_become_the_same_version() {
    let mut h = History::default();
    h.write(1, (0, 100), 1).write(2, (10, 90), 1);
    assert!(matches!(h.verdict(), Verdict::NotLinearizable(_)));
}

#[test]
fn check_and_set_succeeds_only_once_per_version() {
    let cas = |value| Input::Cas {
        expected_version: 1,
        value,
    };
    let mut h = History::default();
    h.write(1, (0, 10), 1)
        .push("k", cas(2), 20, ok(100, Output::Written { version: 2 }))
        .push("k", cas(3), 30, ok(90, Output::CasRejected));
    assert_eq!(h.verdict(), Verdict::Linearizable);

    let mut both = History::default();
    both.write(1, (0, 10), 1)
        .push("k", cas(2), 20, ok(100, Output::Written { version: 2 }))
        .push("k", cas(3), 30, ok(90, Output::Written { version: 2 }));
    assert!(matches!(both.verdict(), Verdict::NotLinearizable(_)));

    let mut refused_at_its_version = History::default();
    refused_at_its_version
        .write(1, (0, 10), 1)
        .push("k", cas(2), 20, ok(30, Output::CasRejected));
    assert_eq!(stuck_on(refused_at_its_version.verdict()), 1);
}

#[test]
fn keys_are_checked_independently() {
    let mut h = History::default();
    h.write(1, (0, 10), 1)
        .push(
            "other",
            Input::Read,
            20,
            ok(
                30,
                Output::Read {
                    version: 0,
                    value: None,
                },
            ),
        )
        .read((40, 50), 1, Some(1));
    assert_eq!(h.verdict(), Verdict::Linearizable);

    h.push(
        "other",
        Input::Read,
        60,
        ok(
            70,
            Output::Read {
                version: 1,
                value: Some(1),
            },
        ),
    );
    match h.verdict() {
        Verdict::NotLinearizable(v) => assert_eq!((v.key.as_str(), v.stuck), ("other", 3)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_budget_cuts_off_a_long_search() {
    let mut h = History::default();
    for i in 0..50 {
        h.write(i + 1, (i * 10, i * 10 + 5), i + 1);
    }
    assert_eq!(check(&h.0, 10), Verdict::Inconclusive { key: "k".into() });
    assert_eq!(h.verdict(), Verdict::Linearizable);
}

#[test]
fn many_overlapping_unknown_writes_stay_within_the_budget() {
    // Twenty unknown writes in flight together, then reads that pin down which ones
    // happened: memoization keeps the search polynomial here.
    let mut h = History::default();
    for v in 1..=20 {
        h.unknown_write(v, v);
    }
    h.read((100, 110), 3, Some(7))
        .write(100, (120, 130), 4)
        .read((140, 150), 4, Some(100));
    assert_eq!(check(&h.0, 200_000), Verdict::Linearizable);
    h.read((160, 170), 4, Some(7));
    assert!(matches!(check(&h.0, 2_000_000), Verdict::NotLinearizable(_)));
}

#[test]
fn only_an_unknown_write_invoked_in_time_can_fill_a_version_gap() {
    let mut late = History::default();
    late.write(1, (0, 10), 1)
        .write(3, (30, 40), 3)
        .unknown_write(2, 50);
    assert!(matches!(late.verdict(), Verdict::NotLinearizable(_)));

    // The same gap with an earlier unknown write as well: that one fills it.
    late.unknown_write(4, 5);
    assert_eq!(late.verdict(), Verdict::Linearizable);
}

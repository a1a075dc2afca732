use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;

use super::*;
use crate::rng::Rng;

fn set_of(members: &[&str], max: usize) -> Set {
    let mut s = Set::new();
    for m in members {
        s.add(m.as_bytes(), max);
    }
    s
}

fn members(s: &Set) -> BTreeSet<Vec<u8>> {
    s.iter().map(|e| e.to_bytes().to_vec()).collect()
}

fn strs(s: &Set) -> Vec<String> {
    s.iter()
        .map(|e| String::from_utf8_lossy(&e.to_bytes()).into_owned())
        .collect()
}

#[test]
fn members_are_small() {
    assert_eq!(size_of::<Member>(), 24);
    // Inside the key's entry, where a value has 24 bytes.
    assert_eq!(size_of::<Set>(), 16);
    assert_eq!(size_of::<crate::Value>(), 24);
    let short = Member::new(b"0123456789012345678901");
    assert_eq!(short.heap_bytes(), 0);
    assert_eq!(short.bytes(), b"0123456789012345678901");
    let long = Member::new(b"01234567890123456789012");
    assert_eq!(long.heap_bytes(), 23);
    assert_eq!(long.bytes(), b"01234567890123456789012");
    assert_eq!(Member::new(b"").bytes(), b"");
}

#[test]
fn integers_format_like_redis() {
    for v in [0, 1, -1, 9, 10, -10, i64::MAX, i64::MIN, 123_456_789] {
        assert_eq!(Elem::Int(v).to_bytes(), v.to_string().as_bytes());
    }
}

#[test]
fn intsets_stay_sorted_and_upgrade() {
    let mut s = set_of(&["5", "-3", "100", "5"], 512);
    assert_eq!(s.encoding(), "intset");
    assert_eq!(strs(&s), ["-3", "5", "100"]);
    assert_eq!(s.intset_blob().unwrap()[..4], [2, 0, 0, 0]);
    assert!(s.add(b"70000", 512));
    assert_eq!(s.intset_blob().unwrap()[..4], [4, 0, 0, 0]);
    assert!(s.add(b"-9223372036854775808", 512));
    assert_eq!(s.intset_blob().unwrap()[..4], [8, 0, 0, 0]);
    assert_eq!(
        strs(&s),
        ["-9223372036854775808", "-3", "5", "100", "70000"]
    );
    // Removing never narrows, as intset.c.
    assert!(s.remove(b"-9223372036854775808"));
    assert!(s.remove(b"70000"));
    assert!(!s.remove(b"70000"));
    let blob = s.intset_blob().unwrap();
    assert_eq!(blob[..8], [8, 0, 0, 0, 3, 0, 0, 0]);
    assert_eq!(blob.len(), 8 + 3 * 8);
    assert!(s.contains(b"-3") && !s.contains(b"-4") && !s.contains(b"x"));
    // Not canonical: a string, so the set converts.
    for odd in ["+1", "01", "-0", " 1", "1 ", "9223372036854775808"] {
        let mut t = set_of(&["1"], 512);
        assert!(!t.contains(odd.as_bytes()));
        assert!(t.add(odd.as_bytes(), 512), "{odd}");
        assert_eq!(t.encoding(), "hashtable", "{odd}");
        assert!(t.contains(b"1") && t.contains(odd.as_bytes()));
    }
}

#[test]
fn the_limit_converts_on_the_member_past_it() {
    let mut s = Set::new();
    for i in 0..4 {
        assert!(s.add(i.to_string().as_bytes(), 4));
    }
    assert_eq!(s.encoding(), "intset");
    assert!(!s.add(b"3", 4));
    assert_eq!(s.encoding(), "intset");
    assert!(s.add(b"4", 4));
    assert_eq!(s.encoding(), "hashtable");
    assert_eq!(s.len(), 5);
    // Never back.
    for i in 0..5 {
        s.remove(i.to_string().as_bytes());
    }
    assert!(s.is_empty());
    s.add(b"1", 4);
    assert_eq!(s.encoding(), "hashtable");
    // A limit of 0: every set is a hashtable.
    assert_eq!(set_of(&["1"], 0).encoding(), "hashtable");
}

#[test]
fn elems_from_either_encoding_meet() {
    let ints = set_of(&["1", "2", "3"], 512);
    let strings = set_of(&["2", "3", "x"], 512);
    assert_eq!(strings.encoding(), "hashtable");
    assert!(strings.contains_elem(Elem::Int(2)));
    assert!(!strings.contains_elem(Elem::Int(1)));
    assert!(ints.contains_elem(Elem::Bytes(b"3")));
    assert!(!ints.contains_elem(Elem::Bytes(b"03")));
    assert!(!ints.contains_elem(Elem::Bytes(b"x")));
}

#[test]
fn intersection_starts_from_the_smallest_and_stops_when_asked() {
    let a = set_of(&["1", "2", "3", "4", "5"], 512);
    let b = set_of(&["5", "3", "1", "x"], 512);
    let c = set_of(&["3", "5", "9"], 512);
    let mut seen = Vec::new();
    Set::intersect(&[&a, &b, &c], |e| {
        seen.push(e.to_bytes());
        true
    });
    // c is the smallest: its order (an intset's, ascending).
    assert_eq!(seen, ["3", "5"]);
    let mut n = 0;
    Set::intersect(&[&a, &b], |_| {
        n += 1;
        n < 2
    });
    assert_eq!(n, 2);
    let stored = Set::intersection(&[&b, &a], 512);
    assert_eq!(stored.encoding(), "intset");
    assert_eq!(strs(&stored), ["1", "3", "5"]);
    // The same set twice is one set.
    assert_eq!(Set::intersection(&[&b, &b], 512).len(), 4);
    assert_eq!(Set::intersection(&[&b], 2).encoding(), "hashtable");
}

#[test]
fn union_and_difference() {
    let a = set_of(&["1", "2", "3"], 512);
    let b = set_of(&["3", "4", "y"], 512);
    let u = Set::union(&[Some(&a), None, Some(&b)], 512);
    assert_eq!(u.encoding(), "hashtable");
    assert_eq!(u.len(), 5);
    let u = Set::union(&[Some(&a), None], 512);
    assert_eq!((u.encoding(), u.len()), ("intset", 3));
    let d = Set::difference(&[Some(&a), Some(&b), None], false, 512);
    assert_eq!(strs(&d), ["1", "2"]);
    assert_eq!(d.encoding(), "intset");
    assert!(Set::difference(&[None, Some(&a)], false, 512).is_empty());
    assert!(Set::difference(&[Some(&a), Some(&a)], true, 512).is_empty());
    assert_eq!(Set::difference(&[Some(&a)], false, 512).len(), 3);
}

/// Algorithm 2 (the first set much larger than the rest together, work
/// counted as Redis counts it) keeps the encoding the whole first set
/// gave; algorithm 1 builds from the survivors.
#[test]
fn difference_encoding_follows_redis_s_algorithm_choice() {
    let big: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let big_refs: Vec<&str> = big.iter().map(String::as_str).collect();
    let a = set_of(&big_refs, 512);
    let small = set_of(&["0", "1"], 512);
    // Three sets: work one = 20*3/2 = 30 > two = 20+2+2: algorithm 2. With
    // a limit of 10, adding the 20 members overflowed: a hashtable with 18.
    let d = Set::difference(&[Some(&a), Some(&small), Some(&small)], false, 10);
    assert_eq!((d.len(), d.encoding()), (18, "hashtable"));
    // Two sets: one = 20 <= two = 22: algorithm 1, same overflow.
    let d = Set::difference(&[Some(&a), Some(&small)], false, 10);
    assert_eq!((d.len(), d.encoding()), (18, "hashtable"));
    let d = Set::difference(&[Some(&a), Some(&small)], false, 18);
    assert_eq!((d.len(), d.encoding()), (18, "intset"));
    let d = Set::difference(&[Some(&a), Some(&small), Some(&small)], false, 18);
    assert_eq!((d.len(), d.encoding()), (18, "hashtable"));
}

#[test]
fn pops_and_samples_have_the_right_shape() {
    let mut rng = Rng::new(42);
    for (n, max) in [(10, 512), (100, 512), (100, 0)] {
        let all: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let s = set_of(&refs, max);
        for count in [0, 1, 2, n / 5, n / 3, n / 2, n - 1, n, n + 1, usize::MAX] {
            let picked = s.sample(count, &mut rng);
            assert_eq!(picked.len(), count.min(n));
            let distinct: BTreeSet<Vec<u8>> =
                picked.iter().map(|e| e.to_bytes().to_vec()).collect();
            assert_eq!(distinct.len(), picked.len());
            assert!(distinct.iter().all(|m| s.contains(m)));
            let mut t = s.clone();
            let popped = t.pop_many(count, max, &mut rng);
            assert_eq!(popped.len(), count.min(n));
            assert_eq!(t.len(), n - popped.len());
            let popped: BTreeSet<Vec<u8>> = popped.iter().map(|b| b.to_vec()).collect();
            assert_eq!(popped.len(), count.min(n));
            assert!(popped.iter().all(|m| s.contains(m) && !t.contains(m)));
            assert_eq!(members(&t).len() + popped.len(), n);
        }
    }
}

/// When few members stay, SPOP builds a new set of them, as SADD would:
/// an intset again if they fit.
#[test]
fn spop_that_leaves_few_makes_a_fresh_set() {
    let all: Vec<String> = (0..600).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let mut s = set_of(&refs, 512);
    assert_eq!(s.encoding(), "hashtable");
    s.pop_many(590, 512, &mut Rng::new(1));
    assert_eq!((s.len(), s.encoding()), (10, "intset"));
    let mut s = set_of(&refs, 512);
    s.pop_many(100, 512, &mut Rng::new(1));
    assert_eq!((s.len(), s.encoding()), (500, "hashtable"));
}

/// Uniform picks: every member is about equally likely, from either
/// encoding and through each strategy (a loose chi-square bound).
#[test]
fn picks_are_uniform() {
    for max in [512, 0] {
        let s = set_of(&["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"], max);
        let mut rng = Rng::new(7);
        for count in [1, 2, 8] {
            let mut hits: HashMap<Vec<u8>, usize> = HashMap::new();
            let rounds = 20_000 / count;
            for _ in 0..rounds {
                for e in s.sample(count, &mut rng) {
                    *hits.entry(e.to_bytes().to_vec()).or_default() += 1;
                }
            }
            let total: usize = hits.values().sum();
            let expected = total as f64 / 10.0;
            let chi: f64 = hits
                .values()
                .map(|&h| (h as f64 - expected).powi(2) / expected)
                .sum();
            assert_eq!(hits.len(), 10);
            // df = 9: 40 is a probability of 1e-5.
            assert!(chi < 40.0, "count {count}, max {max}: chi-square {chi}");
        }
    }
}

#[test]
fn scans_see_every_member() {
    let ints = set_of(&["3", "1", "2"], 512);
    let mut seen = Vec::new();
    assert_eq!(ints.scan(77, 1, |e| seen.push(e.to_bytes())), 0);
    assert_eq!(seen, ["1", "2", "3"]);
    let mut s = Set::new();
    for i in 0..1000 {
        s.add(format!("m{i}").as_bytes(), 512);
    }
    let mut seen = BTreeSet::new();
    let mut cursor = 0;
    loop {
        cursor = s.scan(cursor, 10, |e| {
            seen.insert(e.to_bytes().to_vec());
        });
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen, members(&s));
}

#[test]
fn rdb_shapes() {
    let s = set_of(&["1", "-2", "300"], 512);
    let blob = s.intset_blob().unwrap();
    assert_eq!(blob, [2, 0, 0, 0, 3, 0, 0, 0, 0xFE, 0xFF, 1, 0, 0x2C, 0x01]);
    let back = Set::from_intset_blob(&blob).unwrap();
    assert_eq!(strs(&back), ["-2", "1", "300"]);
    // A wide blob keeps its width.
    let mut wide = vec![8, 0, 0, 0, 1, 0, 0, 0];
    wide.extend_from_slice(&5i64.to_le_bytes());
    assert_eq!(
        Set::from_intset_blob(&wide).unwrap().intset_blob(),
        Some(wide)
    );
    assert!(matches!(
        Set::from_intset_blob(&[2, 0, 0, 0, 0, 0, 0, 0]),
        Err(LoadError::Corrupt(_))
    ));
    assert!(set_of(&["x"], 512).intset_blob().is_none());

    let listed = Set::from_members(["1", "2", "3"].iter(), 512).unwrap();
    assert_eq!(listed.encoding(), "intset");
    let listed = Set::from_members(["1", "a"].iter(), 512).unwrap();
    assert_eq!(listed.encoding(), "hashtable");
    let listed = Set::from_members(["1", "2", "3"].iter(), 2).unwrap();
    assert_eq!(listed.encoding(), "hashtable");
    assert_eq!(
        Set::from_members(["1", "1"].iter(), 512).unwrap_err(),
        LoadError::Duplicate
    );
    assert_eq!(
        Set::from_members(["a", "a"].iter(), 512).unwrap_err(),
        LoadError::Duplicate
    );
    assert_eq!(
        Set::from_members(["a", "a"].iter(), 0).unwrap_err(),
        LoadError::Duplicate
    );
}

#[test]
fn loaded_sets_fit_the_configured_limit() {
    let mut s = Set::from_members(["1", "70000", "3"].iter(), 2).unwrap();
    assert_eq!(s.encoding(), "hashtable");
    s.fit_loaded(3);
    assert_eq!(s.encoding(), "intset");
    assert_eq!(s.intset_blob().unwrap()[..4], [4, 0, 0, 0]);
    assert_eq!(strs(&s), ["1", "3", "70000"]);
    s.fit_loaded(2);
    assert_eq!(s.encoding(), "hashtable");
    assert_eq!(s.len(), 3);
    let mut mixed = set_of(&["1", "x"], 512);
    mixed.fit_loaded(512);
    assert_eq!(mixed.encoding(), "hashtable");
}

// The model: a set of byte strings, and what Redis's rules say the
// encoding is (intset until a non-integer or one member too many, then a
// hashtable for good) and the intset's width (the widest member ever
// added).

const MAX: usize = 16;

#[derive(Debug, Clone)]
enum Op {
    Add(Vec<u8>),
    Remove(Vec<u8>),
    Pop(u64),
    PopMany(usize, u64),
}

fn member() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (-40i64..40).prop_map(|i| i.to_string().into_bytes()),
        2 => any::<i64>().prop_map(|i| i.to_string().into_bytes()),
        1 => (i64::from(i16::MAX) - 2..i64::from(i16::MAX) + 2)
            .prop_map(|i| i.to_string().into_bytes()),
        1 => prop::sample::select(vec!["+1", "01", "-0", "", " 2", "1.0"])
            .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(b'a'..b'e', 1..4),
        1 => prop::collection::vec(any::<u8>(), 20..40),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => member().prop_map(Op::Add),
        4 => member().prop_map(Op::Remove),
        1 => any::<u64>().prop_map(Op::Pop),
        1 => (0usize..24, any::<u64>()).prop_map(|(n, seed)| Op::PopMany(n, seed)),
    ]
}

#[derive(Debug, Default)]
struct Model {
    members: BTreeSet<Vec<u8>>,
    table: bool,
    width: usize,
}

impl Model {
    fn add(&mut self, m: &[u8]) -> bool {
        let fresh = self.members.insert(m.to_vec());
        if !self.table {
            match strict_i64(m) {
                Some(x) if fresh => {
                    self.width = self.width.max(width_of(x));
                    self.table = self.members.len() > MAX;
                }
                Some(_) => {}
                None => self.table = true,
            }
        }
        fresh
    }
}

fn check(set: &Set, model: &Model) {
    assert_eq!(set.len(), model.members.len());
    assert_eq!(members(set), model.members);
    let want = if model.table { "hashtable" } else { "intset" };
    assert_eq!(set.encoding(), want);
    for m in &model.members {
        assert!(set.contains(m));
    }
    if let Some(blob) = set.intset_blob() {
        let width = model.width.max(2);
        assert_eq!(blob[..4], (width as u32).to_le_bytes());
        let ints: Vec<i64> = set
            .iter()
            .map(|e| match e {
                Elem::Int(x) => x,
                Elem::Bytes(_) => panic!("an intset yields integers"),
            })
            .collect();
        assert!(ints.windows(2).all(|w| w[0] < w[1]));
        if !model.members.is_empty() {
            let back = Set::from_intset_blob(&blob).expect("its own blob decodes");
            assert_eq!(members(&back), model.members);
            assert_eq!(back.intset_blob(), Some(blob));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn behaves_like_a_btreeset(ops in prop::collection::vec(op(), 0..300)) {
        let mut set = Set::new();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Add(m) => {
                    prop_assert_eq!(set.add(&m, MAX), model.add(&m));
                }
                Op::Remove(m) => {
                    prop_assert_eq!(set.remove(&m), model.members.remove(&m));
                }
                Op::Pop(seed) => {
                    let popped = set.pop_random(&mut Rng::new(seed));
                    match popped {
                        Some(m) => prop_assert!(model.members.remove(&m[..])),
                        None => prop_assert!(model.members.is_empty()),
                    }
                }
                Op::PopMany(n, seed) if n < model.members.len() => {
                    let size = model.members.len();
                    let popped = set.pop_many(n, MAX, &mut Rng::new(seed));
                    prop_assert_eq!(popped.len(), n);
                    for m in &popped {
                        prop_assert!(model.members.remove(&m[..]));
                    }
                    // Few left: they went into a new set, built by adds.
                    if (size - n) * SPOP_MOVE_STRATEGY_MUL <= n {
                        let left = std::mem::take(&mut model.members);
                        model = Model::default();
                        for m in left {
                            model.add(&m);
                        }
                    }
                }
                Op::PopMany(..) => {}
            }
            check(&set, &model);
        }
    }
}

/// What a set built by adding `members` in order looks like: intset while
/// every member is an integer and at most [`MAX`] have been added, with
/// the widest width seen.
fn built(members: &[Vec<u8>]) -> Model {
    let mut model = Model::default();
    for m in members {
        model.add(m);
    }
    model
}

fn check_built(set: &Set, want: &BTreeSet<Vec<u8>>, added: &[Vec<u8>]) {
    // Removals (SDIFF's second algorithm) keep the encoding and width the
    // adds gave.
    let model = Model {
        members: want.clone(),
        ..built(added)
    };
    assert_eq!(members(set), *want);
    check(set, &model);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// SINTER, SUNION and SDIFF against `BTreeSet`'s, encodings included:
    /// the result is built by adds in Redis's order, so it is an intset
    /// exactly when Redis's would be.
    #[test]
    fn algebra_matches_btreeset(
        inputs in prop::collection::vec(prop::collection::vec(member(), 0..30), 1..5),
        missing in prop::collection::vec(any::<bool>(), 5),
    ) {
        let sets: Vec<Set> = inputs
            .iter()
            .map(|ms| {
                let mut s = Set::new();
                ms.iter().for_each(|m| {
                    s.add(m, MAX);
                });
                s
            })
            .collect();
        let models: Vec<BTreeSet<Vec<u8>>> =
            inputs.iter().map(|ms| ms.iter().cloned().collect()).collect();
        // Some keys missing (never the only one for SINTER's sake).
        let present: Vec<Option<&Set>> = sets
            .iter()
            .zip(&missing)
            .map(|(s, &gone)| (!gone).then_some(s))
            .collect();
        let empty = BTreeSet::new();
        let model_of = |i: usize| if present[i].is_some() { &models[i] } else { &empty };

        let all: Vec<&Set> = sets.iter().collect();
        let inter = Set::intersection(&all, MAX);
        let want: BTreeSet<Vec<u8>> = models
            .iter()
            .skip(1)
            .fold(models[0].clone(), |acc, m| acc.intersection(m).cloned().collect());
        let added: Vec<Vec<u8>> = want.iter().cloned().collect();
        check_built(&inter, &want, &added);

        let union = Set::union(&present, MAX);
        let want: BTreeSet<Vec<u8>> = (0..sets.len()).flat_map(|i| model_of(i).clone()).collect();
        let added: Vec<Vec<u8>> = (0..sets.len())
            .flat_map(|i| present[i].map(|s| s.iter().map(|e| e.to_bytes().to_vec()).collect::<Vec<_>>()).unwrap_or_default())
            .collect();
        check_built(&union, &want, &added);

        let diff = Set::difference(&present, false, MAX);
        let want: BTreeSet<Vec<u8>> = (1..sets.len())
            .fold(model_of(0).clone(), |acc, i| acc.difference(model_of(i)).cloned().collect());
        // Redis's choice: survivors only, or the whole first set then
        // removals.
        let first: Vec<Vec<u8>> = present[0]
            .map(|s| s.iter().map(|e| e.to_bytes().to_vec()).collect())
            .unwrap_or_default();
        let n_present = present.iter().flatten().count();
        let one = first.len() * n_present / 2;
        let two: usize = present.iter().flatten().map(|s| s.len()).sum();
        let added: Vec<Vec<u8>> = if present[0].is_none() || one <= two {
            want.iter().cloned().collect()
        } else {
            first
        };
        check_built(&diff, &want, &added);
        if let Some(first) = present[0] {
            let mut twice = present.clone();
            twice.push(Some(first));
            prop_assert!(Set::difference(&twice, true, MAX).is_empty());
        }
    }
}

//! The sorted set as a whole: ZADD's options, conversions, ranges, pops,
//! random picks, set operations and RDB, and a model-based property test
//! against a sorted vector.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::rdb::{Reader, Writer, kind};
use crate::rng::Rng;

fn limits(entries: usize, value: usize) -> Limits {
    Limits { entries, value }
}

fn add(z: &mut ZSet, member: &[u8], score: f64) -> Outcome {
    z.add(member, score, AddFlags::default(), &Limits::default())
        .unwrap()
}

/// A set of `members` with the given scores, under `l`.
fn zset(pairs: &[(&str, f64)], l: &Limits) -> ZSet {
    let mut z = ZSet::new();
    for (m, s) in pairs {
        z.add(m.as_bytes(), *s, AddFlags::default(), l).unwrap();
    }
    z
}

fn members(it: Iter<'_>) -> Vec<String> {
    it.map(|(m, _)| String::from_utf8_lossy(m).into_owned())
        .collect()
}

fn pairs(it: Iter<'_>) -> Vec<(Vec<u8>, f64)> {
    it.map(|(m, s)| (m.to_vec(), s)).collect()
}

/// The dict and the tree agree, and the tree keeps its invariants.
fn check(z: &ZSet) {
    if let Repr::Big(b) = &z.repr {
        b.tree.check(&key_fn(&b.dict));
        assert_eq!(b.tree.len(), b.dict.len());
        let mut seen = HashSet::new();
        for (score, id) in b.tree.iter_from(0, usize::MAX, false) {
            let e = b
                .dict
                .get_index(id as usize)
                .expect("a tree id names a dict entry");
            assert_eq!(e.score.to_bits(), score.to_bits());
            assert!(seen.insert(id), "id {id} twice");
        }
    }
}

/// Both encodings of the same pairs: packed (under limits large enough),
/// and big (limits of 0).
fn both(pairs: &[(&str, f64)]) -> [ZSet; 2] {
    let packed = zset(pairs, &limits(1000, 1000));
    let big = zset(pairs, &limits(0, 0));
    assert!(packed.is_packed() && !big.is_packed());
    [packed, big]
}

#[test]
fn sizes_stay_small() {
    assert_eq!(size_of::<Entry>(), 32);
    assert_eq!(size_of::<ZSet>(), 16);
}

#[test]
fn zadd_options_answer_as_redis() {
    let l = Limits::default();
    for big in [false, true] {
        let l = if big { limits(0, 0) } else { l };
        let mut z = ZSet::new();
        let f = |nx, xx, gt, lt, incr| AddFlags {
            nx,
            xx,
            gt,
            lt,
            incr,
        };
        let plain = AddFlags::default();
        assert_eq!(z.add(b"a", 1.0, plain, &l), Ok(Outcome::Added(1.0)));
        assert_eq!(z.add(b"a", 1.0, plain, &l), Ok(Outcome::Unchanged(1.0)));
        assert_eq!(z.add(b"a", 2.0, plain, &l), Ok(Outcome::Updated(2.0)));
        // NX: only new members.
        let nx = f(true, false, false, false, false);
        assert_eq!(z.add(b"a", 5.0, nx, &l), Ok(Outcome::Skipped));
        assert_eq!(z.add(b"b", 5.0, nx, &l), Ok(Outcome::Added(5.0)));
        // XX: only existing ones.
        let xx = f(false, true, false, false, false);
        assert_eq!(z.add(b"c", 5.0, xx, &l), Ok(Outcome::Skipped));
        assert_eq!(z.add(b"a", 3.0, xx, &l), Ok(Outcome::Updated(3.0)));
        // GT and LT apply to existing members only.
        let gt = f(false, false, true, false, false);
        let lt = f(false, false, false, true, false);
        assert_eq!(z.add(b"a", 2.0, gt, &l), Ok(Outcome::Skipped));
        assert_eq!(z.add(b"a", 3.0, gt, &l), Ok(Outcome::Skipped));
        assert_eq!(z.add(b"a", 4.0, gt, &l), Ok(Outcome::Updated(4.0)));
        assert_eq!(z.add(b"a", 9.0, lt, &l), Ok(Outcome::Skipped));
        assert_eq!(z.add(b"a", 1.0, lt, &l), Ok(Outcome::Updated(1.0)));
        assert_eq!(z.add(b"d", 7.0, gt, &l), Ok(Outcome::Added(7.0)));
        assert_eq!(
            z.add(b"e", 7.0, f(false, true, true, false, false), &l),
            Ok(Outcome::Skipped)
        );
        // INCR: from 0 for a new member; GT and LT judge the result.
        let incr = f(false, false, false, false, true);
        assert_eq!(z.add(b"f", 2.5, incr, &l), Ok(Outcome::Added(2.5)));
        assert_eq!(z.add(b"f", 2.5, incr, &l), Ok(Outcome::Updated(5.0)));
        assert_eq!(z.add(b"f", 0.0, incr, &l), Ok(Outcome::Unchanged(5.0)));
        assert_eq!(
            z.add(b"f", -1.0, f(false, false, true, false, true), &l),
            Ok(Outcome::Skipped)
        );
        assert_eq!(
            z.add(b"f", -1.0, f(false, false, false, true, true), &l),
            Ok(Outcome::Updated(4.0))
        );
        assert_eq!(
            z.add(b"f", 1.0, f(true, false, false, false, true), &l),
            Ok(Outcome::Skipped)
        );
        // NaN: as a score, and as the sum of the infinities.
        assert_eq!(z.add(b"g", f64::NAN, plain, &l), Err(ZsetError::Nan));
        assert_eq!(z.add(b"a", f64::NAN, xx, &l), Err(ZsetError::Nan));
        assert_eq!(
            z.add(b"h", f64::INFINITY, plain, &l),
            Ok(Outcome::Added(f64::INFINITY))
        );
        assert_eq!(
            z.add(b"h", f64::NEG_INFINITY, incr, &l),
            Err(ZsetError::Nan)
        );
        assert_eq!(z.score(b"h"), Some(f64::INFINITY));
        assert_eq!(
            z.add(b"h", f64::INFINITY, incr, &l),
            Ok(Outcome::Unchanged(f64::INFINITY))
        );
        assert_eq!(z.len(), 5);
        assert_eq!(z.is_packed(), !big);
        check(&z);
    }
}

#[test]
fn negative_zero_is_kept_only_by_the_big_encoding() {
    // redis-server 7.0.15: `ZADD z -0 m` then ZSCORE answers "0" for a
    // listpack and "-0" for a skiplist.
    let [packed, big] = both(&[("m", -0.0)]);
    assert_eq!(format_score(packed.score(b"m").unwrap()).as_str(), "0");
    assert_eq!(format_score(big.score(b"m").unwrap()).as_str(), "-0");
    // And conversion carries the packed set's 0.
    let mut z = packed.clone();
    z.convert();
    assert_eq!(format_score(z.score(b"m").unwrap()).as_str(), "0");
    // ZINCRBY replies with the score it computed.
    let mut z = big;
    let incr = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    let out = z.add(b"m", -0.0, incr, &Limits::default()).unwrap();
    assert_eq!(format_score(out.score().unwrap()).as_str(), "-0");
}

#[test]
fn converts_once_on_either_limit() {
    let l = limits(3, 5);
    let mut z = zset(&[("a", 1.0), ("b", 2.0), ("c", 3.0)], &l);
    assert_eq!(z.encoding(), "listpack");
    // Updating an existing member never converts.
    z.add(b"a", 10.0, AddFlags::default(), &l).unwrap();
    assert!(z.is_packed());
    // An addition that is skipped does not either.
    let xx = AddFlags {
        xx: true,
        ..AddFlags::default()
    };
    z.add(b"zzzzzzzzzz", 1.0, xx, &l).unwrap();
    assert!(z.is_packed());
    z.add(b"d", 4.0, AddFlags::default(), &l).unwrap();
    assert_eq!(z.encoding(), "skiplist");
    for m in [&b"a"[..], b"b", b"c", b"d"] {
        z.remove(m);
    }
    z.add(b"x", 1.0, AddFlags::default(), &l).unwrap();
    assert!(!z.is_packed(), "never back");
    let mut z = zset(&[("12345", 1.0)], &l);
    assert!(z.is_packed());
    z.add(b"123456", 1.0, AddFlags::default(), &l).unwrap();
    assert!(!z.is_packed());
    assert_eq!(members(z.iter()), ["12345", "123456"]);
    // Limits of 0 make every set big from its first member, as ZADD
    // creates it then.
    assert!(!zset(&[("a", 1.0)], &limits(0, 64)).is_packed());
    assert!(!zset(&[("abc", 1.0)], &limits(128, 2)).is_packed());
}

#[test]
fn results_take_the_encoding_of_their_size() {
    let l = limits(3, 4);
    let small = [(&b"a"[..], 1.0), (b"b", 2.0)];
    assert!(ZSet::from_sorted(&small, &l).is_packed());
    let long = [(&b"a"[..], 1.0), (b"bbbbb", 2.0)];
    assert!(!ZSet::from_sorted(&long, &l).is_packed());
    let many = [(&b"a"[..], 1.0), (b"b", 2.0), (b"c", 3.0), (b"d", 4.0)];
    let z = ZSet::from_sorted(&many, &l);
    assert!(!z.is_packed());
    check(&z);
    assert_eq!(members(z.iter()), ["a", "b", "c", "d"]);
    // A ZRANGESTORE of a big set's first two members is packed.
    let part: Vec<(&[u8], f64)> = z.range_by_rank(0, 1, false).collect();
    assert!(ZSet::from_sorted(&part, &l).is_packed());
    assert!(!ZSet::from_sorted(&small, &limits(0, 64)).is_packed());
    // Out of order (a ZRANGESTORE REV) or with a member twice: sorted, the
    // last score winning.
    let desc = [(&b"b"[..], 2.0), (b"a", 1.0), (b"c", 0.5), (b"a", 3.0)];
    for l in [l, limits(0, 0)] {
        let z = ZSet::from_sorted(&desc, &l);
        check(&z);
        assert_eq!(
            pairs(z.iter()),
            [
                (b"c".to_vec(), 0.5),
                (b"b".to_vec(), 2.0),
                (b"a".to_vec(), 3.0)
            ]
        );
    }
}

#[test]
fn range_stores_build_as_redis_does() {
    // redis-server 7.0.15, zset-max-listpack-entries 16 and -value 4: a
    // ZRANGESTORE of [aa -0, g -0, ..., zzzzzzzzzzzzzzzzzzzz 2] from a
    // skiplist starts packed, stores aa and g as 0, converts at the long
    // member: ZRANGE WITHSCORES then says 0 for both.
    let l = limits(16, 4);
    let src = [
        (&b"aa"[..], -0.0),
        (b"g", -0.0),
        (b"zzzzzzzzzzzzzzzzzzzz", 2.0),
        (b"m", -0.0),
    ];
    let z = ZSet::from_range(src, Some(4), &l);
    assert!(!z.is_packed());
    check(&z);
    let texts: Vec<String> = z.iter().map(|(_, s)| format_score(s).to_string()).collect();
    assert_eq!(texts, ["0", "0", "-0", "2"]);
    // Over the entries limit from the start: big throughout, -0 kept.
    let z = ZSet::from_range(src, Some(17), &l);
    assert_eq!(format_score(z.score(b"aa").unwrap()).as_str(), "-0");
    // A union's result is made big, then packed if small: 0 when packed.
    let z = ZSet::from_sorted(&[(&b"a"[..], -0.0)], &l);
    assert_eq!(format_score(z.score(b"a").unwrap()).as_str(), "0");
}

#[test]
fn scan_answers_with_the_text_the_encoding_holds() {
    // redis-server 7.0.15: ZSCAN of a listpack gives 100000000000000000 and
    // 4611686018427387904, of a skiplist 1e+17 and 4.6116860184273879e+18.
    let [packed, big] = both(&[("a", 1e17), ("b", 4611686018427387904.0), ("c", 0.5)]);
    let text = |z: &ZSet, m: &[u8]| z.scan_score_text(z.score(m).unwrap()).to_string();
    assert_eq!(text(&packed, b"a"), "100000000000000000");
    assert_eq!(text(&packed, b"b"), "4611686018427387904");
    assert_eq!(text(&packed, b"c"), "0.5");
    assert_eq!(text(&big, b"a"), "1e+17");
    assert_eq!(text(&big, b"b"), "4.6116860184273879e+18");
}

#[test]
fn ranks_and_rank_ranges() {
    let pairs = [
        ("a", 1.0),
        ("b", 2.0),
        ("c", 2.0),
        ("d", 3.0),
        ("e", f64::INFINITY),
    ];
    for z in both(&pairs) {
        assert_eq!(z.rank(b"a", false), Some(0));
        assert_eq!(z.rank(b"c", false), Some(2));
        assert_eq!(z.rank(b"c", true), Some(2));
        assert_eq!(z.rank(b"e", true), Some(0));
        assert_eq!(z.rank(b"x", false), None);
        assert_eq!(z.get(4), Some((&b"e"[..], f64::INFINITY)));
        assert_eq!(z.get(5), None);
        assert_eq!(
            members(z.range_by_rank(0, -1, false)),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(members(z.range_by_rank(1, 2, false)), ["b", "c"]);
        assert_eq!(members(z.range_by_rank(-2, -1, false)), ["d", "e"]);
        assert_eq!(members(z.range_by_rank(0, 1, true)), ["e", "d"]);
        assert_eq!(members(z.range_by_rank(-1, 100, true)), ["a"]);
        assert_eq!(z.range_by_rank(3, 2, false).len(), 0);
        assert_eq!(z.range_by_rank(5, 9, true).len(), 0);
        assert_eq!(z.range_by_rank(0, -1, true).len(), 5);
        assert_eq!(members(z.iter_rev()), ["e", "d", "c", "b", "a"]);
    }
}

#[test]
fn score_ranges_with_limits() {
    let pairs = [
        ("n", f64::NEG_INFINITY),
        ("a", 1.0),
        ("b", 1.5),
        ("c", 2.0),
        ("d", 2.0),
        ("e", 3.0),
        ("p", f64::INFINITY),
    ];
    let r = |min: &str, max: &str| ScoreRange::parse(min.as_bytes(), max.as_bytes()).unwrap();
    for z in both(&pairs) {
        let all = Limit::ALL;
        assert_eq!(
            members(z.range_by_score(&r("1", "2"), all, false)),
            ["a", "b", "c", "d"]
        );
        assert_eq!(members(z.range_by_score(&r("(1", "(2"), all, false)), ["b"]);
        assert_eq!(
            members(z.range_by_score(&r("-inf", "(1.5"), all, false)),
            ["n", "a"]
        );
        assert_eq!(
            members(z.range_by_score(&r("(-inf", "(+inf"), all, false)).len(),
            5
        );
        assert_eq!(
            members(z.range_by_score(&r("1", "2"), all, true)),
            ["d", "c", "b", "a"]
        );
        assert_eq!(
            members(z.range_by_score(&r("1", "2"), Limit::new(1, 2), false)),
            ["b", "c"]
        );
        assert_eq!(
            members(z.range_by_score(&r("1", "2"), Limit::new(1, 2), true)),
            ["c", "b"]
        );
        assert_eq!(
            members(z.range_by_score(&r("1", "2"), Limit::new(3, -1), false)),
            ["d"]
        );
        assert_eq!(
            z.range_by_score(&r("1", "2"), Limit::new(4, 5), false)
                .len(),
            0
        );
        assert_eq!(
            z.range_by_score(&r("1", "2"), Limit::new(-1, 5), false)
                .len(),
            0
        );
        assert_eq!(
            z.range_by_score(&r("1", "2"), Limit::new(0, 0), false)
                .len(),
            0
        );
        assert_eq!(z.range_by_score(&r("3", "1"), all, false).len(), 0);
        assert_eq!(z.range_by_score(&r("(2", "2"), all, true).len(), 0);
        assert_eq!(z.count_by_score(&r("2", "2")), 2);
        assert_eq!(z.count_by_score(&r("-inf", "+inf")), 7);
        assert_eq!(z.count_by_score(&r("5", "6")), 0);
        assert_eq!(z.count_by_score(&r("(3", "inf")), 1);
    }
}

#[test]
fn lex_ranges_with_limits() {
    let pairs: Vec<(&str, f64)> = ["", "a", "aa", "ab", "b", "c", "cc"]
        .iter()
        .map(|m| (*m, 0.0))
        .collect();
    let r = |min: &str, max: &str| LexRange::parse(min.as_bytes(), max.as_bytes()).unwrap();
    for z in both(&pairs) {
        let all = Limit::ALL;
        assert_eq!(members(z.range_by_lex(&r("-", "+"), all, false)).len(), 7);
        assert_eq!(
            members(z.range_by_lex(&r("[a", "(b"), all, false)),
            ["a", "aa", "ab"]
        );
        assert_eq!(
            members(z.range_by_lex(&r("(a", "[b"), all, false)),
            ["aa", "ab", "b"]
        );
        assert_eq!(
            members(z.range_by_lex(&r("(a", "[b"), all, true)),
            ["b", "ab", "aa"]
        );
        assert_eq!(members(z.range_by_lex(&r("-", "(a"), all, false)), [""]);
        assert_eq!(
            members(z.range_by_lex(&r("[aa", "+"), Limit::new(1, 2), false)),
            ["ab", "b"]
        );
        assert_eq!(
            members(z.range_by_lex(&r("-", "[c"), Limit::new(1, 2), true)),
            ["b", "ab"]
        );
        assert_eq!(z.range_by_lex(&r("+", "-"), all, false).len(), 0);
        assert_eq!(z.range_by_lex(&r("[d", "+"), all, false).len(), 0);
        assert_eq!(z.range_by_lex(&r("-", "("), all, true).len(), 0);
        assert_eq!(z.count_by_lex(&r("[a", "[b")), 4);
        assert_eq!(z.count_by_lex(&r("(", "+")), 6);
        assert_eq!(z.count_by_lex(&r("[c", "[c")), 1);
        assert_eq!(z.count_by_lex(&r("(c", "[c")), 0);
    }
}

#[test]
fn range_removals_count_what_went() {
    let pairs: Vec<(String, f64)> = (0..300)
        .map(|i| (format!("m{i:03}"), f64::from(i / 2)))
        .collect();
    let refs: Vec<(&str, f64)> = pairs.iter().map(|(m, s)| (&m[..], *s)).collect();
    for mut z in both(&refs) {
        assert_eq!(z.remove_range_by_rank(0, 9), 10);
        assert_eq!(z.remove_range_by_rank(-10, -1), 10);
        assert_eq!(z.remove_range_by_rank(5, 2), 0);
        assert_eq!(z.len(), 280);
        let r = ScoreRange::parse(b"(10", b"20").unwrap();
        assert_eq!(z.remove_range_by_score(&r), 20);
        assert_eq!(z.count_by_score(&r), 0);
        let lex = LexRange::parse(b"[m100", b"(m110").unwrap();
        // All scores are not equal, but these members' order agrees.
        assert_eq!(z.remove_range_by_lex(&lex), 10);
        check(&z);
        // Most of it at once (the big set rebuilds).
        assert_eq!(z.remove_range_by_rank(10, -11), 230);
        check(&z);
        assert_eq!(z.len(), 20);
        assert_eq!(z.remove_range_by_score(&ScoreRange::ALL), 20);
        assert!(z.is_empty());
        check(&z);
    }
}

#[test]
fn pops_take_from_either_end() {
    let pairs = [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)];
    for mut z in both(&pairs) {
        assert_eq!(z.pop(false, 1), [(b"a".to_vec(), 1.0)]);
        assert_eq!(z.pop(true, 2), [(b"d".to_vec(), 4.0), (b"c".to_vec(), 3.0)]);
        assert_eq!(z.pop(true, 10), [(b"b".to_vec(), 2.0)]);
        assert!(z.pop(false, 3).is_empty());
        check(&z);
    }
}

#[test]
fn scan_sees_every_member() {
    let pairs: Vec<(String, f64)> = (0..1000).map(|i| (format!("m{i}"), f64::from(i))).collect();
    let refs: Vec<(&str, f64)> = pairs.iter().map(|(m, s)| (&m[..], *s)).collect();
    let [packed, big] = both(&refs[..100]);
    let mut seen = 0;
    assert_eq!(packed.scan(0, |_, _| seen += 1), 0);
    assert_eq!(seen, 100);
    let big = {
        let mut z = big;
        for (m, s) in &refs[100..] {
            add(&mut z, m.as_bytes(), *s);
        }
        z
    };
    let mut seen = HashMap::new();
    let (mut cursor, mut calls) = (0, 0);
    loop {
        cursor = big.scan(cursor, |m, s| {
            seen.insert(m.to_vec(), s);
        });
        calls += 1;
        if cursor == 0 {
            break;
        }
    }
    assert!(calls > 1);
    assert_eq!(seen.len(), 1000);
    assert_eq!(seen[&b"m77"[..]], 77.0);
}

/// Pearson's chi-square of how often each of `n` outcomes came up.
fn chi_square(counts: &HashMap<Vec<u8>, usize>, n: usize) -> f64 {
    let total: usize = counts.values().sum();
    let expected = total as f64 / n as f64;
    let mut chi = counts
        .values()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum::<f64>();
    chi += (n - counts.len()) as f64 * expected;
    chi
}

#[test]
fn random_members_follow_redis_cases_and_are_uniform() {
    let mut rng = Rng::new(42);
    for size in [10usize, 200] {
        let pairs: Vec<(String, f64)> = (0..size).map(|i| (format!("m{i}"), i as f64)).collect();
        let refs: Vec<(&str, f64)> = pairs.iter().map(|(m, s)| (&m[..], *s)).collect();
        for z in both(&refs) {
            // Repeats: exactly count picks.
            assert_eq!(z.random_members(1000, false, &mut rng).len(), 1000);
            // The whole set, from the highest score down.
            let all = z.random_members(size + 5, true, &mut rng);
            assert_eq!(all.len(), size);
            assert_eq!(all[0].1, (size - 1) as f64);
            // Distinct picks in each strategy's range: 1, 2, a third, most.
            for count in [1, 2, size / 3, size / 2, size - 1] {
                let picks = z.random_members(count, true, &mut rng);
                assert_eq!(picks.len(), count);
                let distinct: HashSet<&[u8]> = picks.iter().map(|p| p.0).collect();
                assert_eq!(distinct.len(), count, "count {count}");
                for (m, s) in picks {
                    assert_eq!(z.score(m), Some(s));
                }
            }
            // Uniform, as Redis's suite checks it: with 10 members, df = 9
            // and a chi-square under 40 (p = 0.00001).
            for count in [1, 2, 3, 8] {
                if count >= size {
                    continue;
                }
                let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
                for _ in 0..(20_000 / count) {
                    for (m, _) in z.random_members(count, true, &mut rng) {
                        *counts.entry(m.to_vec()).or_default() += 1;
                    }
                }
                let chi = chi_square(&counts, size);
                // Critical values at p = 0.00001 for df = 9 and df = 199.
                let limit = if size == 10 { 40.0 } else { 300.0 };
                assert!(chi < limit, "size {size}, count {count}: chi-square {chi}");
            }
            let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
            for (m, _) in z.random_members(20_000, false, &mut rng) {
                *counts.entry(m.to_vec()).or_default() += 1;
            }
            let limit = if size == 10 { 40.0 } else { 300.0 };
            assert!(chi_square(&counts, size) < limit);
            let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
            for _ in 0..20_000 {
                let (m, _) = z.random(&mut rng).unwrap();
                *counts.entry(m.to_vec()).or_default() += 1;
            }
            assert!(chi_square(&counts, size) < limit);
        }
    }
    assert!(ZSet::new().random(&mut rng).is_none());
    assert!(ZSet::new().random_members(5, false, &mut rng).is_empty());
}

/// A plain set as a source: every member scores 1.
struct Plain(Vec<Vec<u8>>);

impl Source for Plain {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        self.0.iter().any(|m| m == member).then_some(1.0)
    }

    fn visit<'s>(&'s self, visit: &mut dyn FnMut(Cow<'s, [u8]>, f64) -> bool) {
        for m in &self.0 {
            // Owned, as an integer set's members would be.
            if !visit(Cow::Owned(m.clone()), 1.0) {
                return;
            }
        }
    }
}

fn owned(r: Members<'_>) -> Vec<(String, f64)> {
    r.into_iter()
        .map(|(m, s)| (String::from_utf8_lossy(&m).into_owned(), s))
        .collect()
}

#[test]
fn unions_intersections_and_differences() {
    let a = zset(&[("x", 1.0), ("y", 2.0), ("z", 3.0)], &Limits::default());
    let b = zset(&[("y", 10.0), ("z", 20.0), ("w", 5.0)], &limits(0, 0));
    let s = Plain(vec![b"z".to_vec(), b"v".to_vec()]);
    let input = |source: &'static dyn Source, weight| Input { source, weight };
    let (a, b, s): (&'static ZSet, &'static ZSet, &'static Plain) = (
        Box::leak(Box::new(a)),
        Box::leak(Box::new(b)),
        Box::leak(Box::new(s)),
    );
    assert_eq!(
        owned(union(&[input(a, 1.0), input(b, 1.0)], Aggregate::Sum)),
        [
            ("x".into(), 1.0),
            ("w".into(), 5.0),
            ("y".into(), 12.0),
            ("z".into(), 23.0)
        ]
    );
    assert_eq!(
        owned(union(&[input(a, 2.0), input(s, 3.0)], Aggregate::Max)),
        [
            ("x".into(), 2.0),
            ("v".into(), 3.0),
            ("y".into(), 4.0),
            ("z".into(), 6.0)
        ]
    );
    assert_eq!(
        owned(inter(
            &[input(a, 1.0), input(b, 1.0), input(s, 1.0)],
            Aggregate::Min
        )),
        [("z".into(), 1.0)]
    );
    assert_eq!(
        owned(inter(&[input(a, 1.0), input(b, 0.5)], Aggregate::Sum)),
        [("y".into(), 7.0), ("z".into(), 13.0)]
    );
    assert_eq!(owned(diff(&[a, b])), [("x".into(), 1.0)]);
    assert_eq!(owned(diff(&[b, a, s])), [("w".into(), 5.0)]);
    assert_eq!(owned(diff(&[a, a])), []);
    assert_eq!(inter_card(&[a, b], 0), 2);
    assert_eq!(inter_card(&[a, b], 1), 1);
    assert_eq!(inter_card(&[a, b, s], 5), 1);
    let empty: &'static ZSet = Box::leak(Box::new(ZSet::new()));
    assert!(inter(&[input(a, 1.0), input(empty, 1.0)], Aggregate::Sum).is_empty());
    assert_eq!(
        union(&[input(empty, 1.0), input(a, 1.0)], Aggregate::Sum).len(),
        3
    );
    assert!(union(&[], Aggregate::Sum).is_empty());
    assert_eq!(inter_card(&[], 0), 0);
}

#[test]
fn set_operations_follow_redis_nan_rules() {
    let inf: &'static ZSet = Box::leak(Box::new(zset(
        &[("m", f64::INFINITY), ("n", 1.0)],
        &Limits::default(),
    )));
    let ninf: &'static ZSet = Box::leak(Box::new(zset(
        &[("m", f64::NEG_INFINITY), ("n", 1.0)],
        &Limits::default(),
    )));
    let i = |source: &'static dyn Source, weight| Input { source, weight };
    // inf + -inf sums to 0.
    let u = owned(union(&[i(inf, 1.0), i(ninf, 1.0)], Aggregate::Sum));
    assert_eq!(u, [("m".into(), 0.0), ("n".into(), 2.0)]);
    let x = owned(inter(&[i(inf, 1.0), i(ninf, 1.0)], Aggregate::Sum));
    assert_eq!(x, [("m".into(), 0.0), ("n".into(), 2.0)]);
    // A weight of 0 times inf is 0 for the first input and for a union...
    let u = owned(union(&[i(inf, 0.0)], Aggregate::Sum));
    assert_eq!(u, [("m".into(), 0.0), ("n".into(), 0.0)]);
    // ...while in an intersection a later input's NaN reaches the
    // aggregate: SUM makes it 0, MIN and MAX keep what they had.
    let x = owned(inter(&[i(ninf, 1.0), i(inf, 0.0)], Aggregate::Max));
    assert_eq!(x, [("m".into(), f64::NEG_INFINITY), ("n".into(), 1.0)]);
    let x = owned(inter(&[i(ninf, 1.0), i(inf, 0.0)], Aggregate::Sum));
    assert_eq!(x, [("m".into(), 0.0), ("n".into(), 1.0)]);
    let mut t = f64::INFINITY;
    Aggregate::Sum.apply(&mut t, f64::NEG_INFINITY);
    assert_eq!(t, 0.0);
}

// What redis-server 7.0.15 DUMPs, with `CONFIG SET rdbcompression no`, for
//   ZADD lp 1 a 2 b 3.5 c -1 member:long 100000 x inf y -inf zz 0.1 w
//          0 12345 -0 neg0 4611686018427387904 big 1e20 huge 1e17 e17
//          -3000000000 m32
// (a listpack: OBJECT ENCODING says so), and with
// `CONFIG SET zset-max-listpack-entries 2` for
//   ZADD sl 1 a 2 b 1.5 c -inf d
// (a skiplist, written as ZSET_2 from the highest score down).
const REDIS_LISTPACK_DUMP: &str = "1140a3a30000001c00827a7a03842d696e6605836d333204f400a22f4dffffffff098b6d656d6265723a6c6f6e670cdfff02f13930030001846e65673005000181770293302e3130303030303030303030303030303031148161020101816202020181630283332e3504817802f2a08601048365313704f400008a5d78456301098362696704f40000000000000040098468756765058531652b32300681790283696e6604ff0a006be011cae61fcd54";
const REDIS_SKIPLIST_DUMP: &str = "0504016200000000000000400163000000000000f83f0161000000000000f03f0164000000000000f0ff0a00dc490f2128b51a5e";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A DUMP payload of `zset`, as `rdb::dump` makes one.
fn dump(zset: &ZSet) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out, 1 << 30);
    w.byte(rdb_type(zset)).unwrap();
    save(&mut w, zset).unwrap();
    w.raw(&10u16.to_le_bytes()).unwrap();
    w.finish().unwrap();
    out
}

/// Reads a payload's value back (its trailer is not checked here).
fn undump(payload: &[u8], l: &Limits) -> Result<Option<ZSet>, crate::rdb::RdbError> {
    let mut r = Reader::new(payload);
    let ty = r.byte()?;
    load(&mut r, ty, l)
}

#[test]
fn listpacks_are_redis_bytes() {
    let redis = unhex(REDIS_LISTPACK_DUMP);
    let pairs = [
        ("a", 1.0),
        ("b", 2.0),
        ("c", 3.5),
        ("member:long", -1.0),
        ("x", 100000.0),
        ("y", f64::INFINITY),
        ("zz", f64::NEG_INFINITY),
        ("w", 0.1),
        ("12345", 0.0),
        ("neg0", -0.0),
        ("big", 4611686018427387904.0),
        ("huge", 1e20),
        ("e17", 1e17),
        ("m32", -3000000000.0),
    ];
    let z = zset(&pairs, &Limits::default());
    assert!(z.is_packed());
    // The payload: type 17, the listpack as a 14-bit-length string, then
    // the version and checksum. Ember's LZF compresses differently, so
    // compare the listpack, then a dump made without compression.
    let lp = to_listpack(&z);
    assert_eq!(&redis[3..3 + lp.len()], &lp[..]);
    let mut mine = vec![
        kind::ZSET_LISTPACK,
        0x40 | (lp.len() >> 8) as u8,
        lp.len() as u8,
    ];
    mine.extend_from_slice(&lp);
    mine.extend_from_slice(&10u16.to_le_bytes());
    mine.extend_from_slice(&crate::rdb::crc::crc64(&mine).to_le_bytes());
    assert_eq!(mine, redis);
    // Read back: the same members and scores, packed.
    let back = undump(&redis, &Limits::default()).unwrap().unwrap();
    assert!(back.is_packed());
    assert_eq!(pairs_of(&back), pairs_of(&z));
    // And our own dump (compressed) reads back the same.
    let back = undump(&dump(&z), &Limits::default()).unwrap().unwrap();
    assert_eq!(pairs_of(&back), pairs_of(&z));
    // With fewer entries allowed, it loads big.
    let back = undump(&redis, &limits(5, 64)).unwrap().unwrap();
    assert!(!back.is_packed());
    check(&back);
}

fn pairs_of(z: &ZSet) -> Vec<(Vec<u8>, u64)> {
    z.iter().map(|(m, s)| (m.to_vec(), s.to_bits())).collect()
}

#[test]
fn skiplists_dump_as_redis_does() {
    let l = limits(2, 64);
    let z = zset(
        &[("a", 1.0), ("b", 2.0), ("c", 1.5), ("d", f64::NEG_INFINITY)],
        &l,
    );
    assert!(!z.is_packed());
    assert_eq!(dump(&z), unhex(REDIS_SKIPLIST_DUMP));
    // Small enough for the default limits: loads packed, as Redis
    // converts a ZSET_2 after loading.
    let back = undump(&unhex(REDIS_SKIPLIST_DUMP), &Limits::default())
        .unwrap()
        .unwrap();
    assert!(back.is_packed());
    assert_eq!(pairs_of(&back), pairs_of(&z));
    let back = undump(&unhex(REDIS_SKIPLIST_DUMP), &l).unwrap().unwrap();
    assert!(!back.is_packed());
    check(&back);
}

#[test]
fn old_encodings_load() {
    // ZSET (type 3): scores as text; 253/254/255 for nan, inf, -inf.
    let mut v = vec![kind::ZSET, 3];
    v.extend_from_slice(b"\x01a\x031.5");
    v.extend_from_slice(b"\x01b\xfe");
    v.extend_from_slice(b"\x01c\x05-2e-1");
    let z = undump(&v, &Limits::default()).unwrap().unwrap();
    assert_eq!(
        pairs(z.iter()),
        [
            (b"c".to_vec(), -0.2),
            (b"a".to_vec(), 1.5),
            (b"b".to_vec(), f64::INFINITY)
        ]
    );
    let mut nan = vec![kind::ZSET, 1];
    nan.extend_from_slice(b"\x01a\xfd");
    assert!(undump(&nan, &Limits::default()).is_err());
    // ZSET_ZIPLIST (12): a ziplist of member, score pairs.
    let zl = ziplist(&[b"a", b"1", b"b", b"2.5"]);
    let mut v = vec![kind::ZSET_ZIPLIST, zl.len() as u8];
    v.extend_from_slice(&zl);
    let z = undump(&v, &Limits::default()).unwrap().unwrap();
    assert!(z.is_packed());
    assert_eq!(
        pairs(z.iter()),
        [(b"a".to_vec(), 1.0), (b"b".to_vec(), 2.5)]
    );
    // Empty ones are skipped, as Redis skips them.
    assert!(
        undump(&[kind::ZSET_2, 0], &Limits::default())
            .unwrap()
            .is_none()
    );
}

/// A ziplist of short strings (each under 64 bytes, a 1-byte prevlen).
fn ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev = 0usize;
    let mut last = 10;
    for item in items {
        last = 10 + body.len();
        let start = body.len();
        body.push(prev as u8);
        body.push(item.len() as u8);
        body.extend_from_slice(item);
        prev = body.len() - start;
    }
    let total = 10 + body.len() + 1;
    let mut zl = Vec::new();
    zl.extend_from_slice(&(total as u32).to_le_bytes());
    zl.extend_from_slice(&(last as u32).to_le_bytes());
    zl.extend_from_slice(&(items.len() as u16).to_le_bytes());
    zl.extend_from_slice(&body);
    zl.push(0xFF);
    zl
}

#[test]
fn bad_payloads_are_errors_never_panics() {
    let l = Limits::default();
    // Duplicates, in each encoding.
    let mut v = vec![kind::ZSET_2, 2];
    for _ in 0..2 {
        v.extend_from_slice(b"\x01a");
        v.extend_from_slice(&1.0f64.to_le_bytes());
    }
    assert!(undump(&v, &l).is_err());
    let lp = {
        let mut b = crate::rdb::listpack::Builder::new();
        for e in [&b"a"[..], b"1", b"b", b"2", b"a", b"3"] {
            b.push(e);
        }
        b.finish()
    };
    let mut v = vec![kind::ZSET_LISTPACK, lp.len() as u8];
    v.extend_from_slice(&lp);
    assert!(undump(&v, &l).is_err());
    // Out of order, odd, NaN and not-a-number scores.
    for items in [
        &[&b"b"[..], b"1", b"a", b"0"][..],
        &[b"a", b"1", b"b"],
        &[b"a", b"nan"],
        &[b"a", b"1x"],
        &[b"a", b""],
    ] {
        let mut b = crate::rdb::listpack::Builder::new();
        items.iter().for_each(|e| b.push(e));
        let lp = b.finish();
        let mut v = vec![kind::ZSET_LISTPACK, lp.len() as u8];
        v.extend_from_slice(&lp);
        assert!(undump(&v, &l).is_err(), "{items:?}");
    }
    // A count far beyond the data allocates nothing and fails.
    let huge = [
        kind::ZSET_2,
        0x81,
        0xFF,
        0xFF,
        0xFF,
        0xFF,
        0xFF,
        0xFF,
        0xFF,
        0xFF,
        1,
        b'a',
    ];
    assert!(undump(&huge, &l).is_err());
    // Every prefix and every byte changed, of every kind: errors or sets,
    // never a panic.
    let big = zset(&[("a", 1.0), ("bb", 2.5), ("123", -1.0)], &limits(0, 0));
    let small = zset(&[("a", 1.0), ("bb", 2.5), ("123", -1.0)], &l);
    let mut text = vec![kind::ZSET, 2];
    text.extend_from_slice(b"\x01a\x031.5\x01b\x02-1");
    for payload in [dump(&big), dump(&small), text, v] {
        for n in 0..payload.len() {
            let _ = undump(&payload[..n], &l);
        }
        for i in 0..payload.len() {
            for b in [
                0x00, 0x01, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xC3, 0xF0, 0xFD, 0xFE, 0xFF,
            ] {
                let mut bad = payload.clone();
                bad[i] = b;
                if let Ok(Some(z)) = undump(&bad, &l) {
                    check(&z);
                }
            }
        }
    }
}

#[test]
fn round_trips_in_both_encodings() {
    let mut pairs: Vec<(String, f64)> = (0..500u16)
        .map(|i| {
            let score = match i % 5 {
                0 => f64::from(i),
                1 => f64::from(i) / 7.0,
                2 => -1e300 * f64::from(i),
                3 => 0.0,
                _ => f64::INFINITY,
            };
            (
                format!("member-{i}-{}", "x".repeat(usize::from(i % 40))),
                score,
            )
        })
        .collect();
    pairs.push(("-0".into(), -0.0));
    let refs: Vec<(&str, f64)> = pairs.iter().map(|(m, s)| (&m[..], *s)).collect();
    for n in [1, 10, 128, 129, 501] {
        let big = zset(&refs[..n], &limits(0, 0));
        let default = zset(&refs[..n], &Limits::default());
        assert_eq!(default.is_packed(), n <= 128);
        for z in [big, default] {
            let back = undump(&dump(&z), &Limits::default()).unwrap().unwrap();
            assert_eq!(pairs_of(&back), pairs_of(&z), "{n}");
            check(&back);
        }
    }
}

#[test]
fn memory_per_member_is_below_redis() {
    // redis-server 7.0.15 (jemalloc), `MEMORY USAGE z SAMPLES 0` after
    // ZADD of members "member:00000000".. with random 53-bit integer
    // scores: 118,696 bytes for 1,000 members, 11,982,184 for 100,000,
    // 117,714,344 for 1,000,000: about 119 bytes a member (the skiplist
    // node, the sds string, the dictEntry and its share of the buckets).
    const REDIS_PER_MEMBER: usize = 119;
    let mut rng = Rng::new(1);
    let mut z = ZSet::new();
    let n = 100_000;
    for i in 0..n {
        let score = (rng.next_u64() >> 11) as f64;
        add(&mut z, format!("member:{i:08}").as_bytes(), score);
    }
    check(&z);
    let per = z.bytes() / n;
    assert!(per < REDIS_PER_MEMBER * 3 / 4, "{per} bytes a member");
    // Just after the conversion, too.
    let mut z = ZSet::new();
    for i in 0..129 {
        add(&mut z, format!("member:{i:08}").as_bytes(), f64::from(i));
    }
    assert!(!z.is_packed());
    let per = z.bytes() / 129;
    assert!(
        per < REDIS_PER_MEMBER,
        "{per} bytes a member after conversion"
    );
}

// -- The model: a sorted vector, and every operation against it. --

/// Scores that tie often, with the extremes and both zeros.
const SCORES: &[f64] = &[
    f64::NEG_INFINITY,
    -1e9,
    -2.5,
    -1.0,
    -0.0,
    0.0,
    0.5,
    1.0,
    2.0,
    3.25,
    7.0,
    1e15,
    4611686018427387904.0,
    1e300,
    f64::INFINITY,
];

/// Members of many shapes: empty, integers, inline and heap lengths.
fn member(i: u8) -> Vec<u8> {
    let i = i % 48;
    match i % 4 {
        0 => i.to_string().into_bytes(),
        1 => format!("m{i}").into_bytes(),
        2 => vec![b'a' + i % 26; usize::from(i % 32)],
        _ => format!("{}-{i}", "long".repeat(usize::from(i) / 6)).into_bytes(),
    }
}

#[derive(Debug, Default, Clone)]
struct Model {
    items: Vec<(f64, Vec<u8>)>,
}

impl Model {
    fn pos(&self, m: &[u8]) -> Option<usize> {
        self.items.iter().position(|(_, x)| x == m)
    }

    fn insert(&mut self, m: Vec<u8>, s: f64) {
        let at = self
            .items
            .iter()
            .position(|(xs, xm)| cmp_key(*xs, xm, s, &m) == std::cmp::Ordering::Greater)
            .unwrap_or(self.items.len());
        self.items.insert(at, (s, m));
    }

    fn add(&mut self, m: &[u8], score: f64, f: AddFlags) -> Result<Outcome, ZsetError> {
        if score.is_nan() {
            return Err(ZsetError::Nan);
        }
        match self.pos(m) {
            None if f.xx => Ok(Outcome::Skipped),
            None => {
                self.insert(m.to_vec(), score);
                Ok(Outcome::Added(score))
            }
            Some(_) if f.nx => Ok(Outcome::Skipped),
            Some(i) => {
                let cur = self.items[i].0;
                let new = if f.incr { cur + score } else { score };
                if new.is_nan() {
                    return Err(ZsetError::Nan);
                }
                if (f.gt && new <= cur) || (f.lt && new >= cur) {
                    return Ok(Outcome::Skipped);
                }
                if new == cur {
                    return Ok(Outcome::Unchanged(new));
                }
                self.items.remove(i);
                self.insert(m.to_vec(), new);
                Ok(Outcome::Updated(new))
            }
        }
    }

    /// Ranks `[lo, hi)` of the members `keep` holds for (a run).
    fn run(&self, keep: impl Fn(f64, &[u8]) -> bool) -> (usize, usize) {
        let lo = self
            .items
            .iter()
            .position(|(s, m)| keep(*s, m))
            .unwrap_or(0);
        let n = self.items[lo..]
            .iter()
            .take_while(|(s, m)| keep(*s, m))
            .count();
        (lo, lo + n)
    }

    fn window(&self, (lo, hi): (usize, usize), l: Limit, reverse: bool) -> Vec<(Vec<u8>, f64)> {
        let mut run: Vec<(Vec<u8>, f64)> = self.items[lo..hi]
            .iter()
            .map(|(s, m)| (m.clone(), *s))
            .collect();
        if reverse {
            run.reverse();
        }
        run.into_iter().skip(l.offset).take(l.count).collect()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(u8, usize, AddFlags),
    Remove(u8),
    Score(u8),
    Rank(u8, bool),
    Get(u8),
    RangeRank(i8, i8, bool),
    RangeScore(ScoreRange, i8, i8, bool),
    CountScore(ScoreRange),
    RemRank(i8, i8),
    RemScore(ScoreRange),
    Pop(bool, u8),
}

fn flags() -> impl Strategy<Value = AddFlags> {
    // Only the combinations ZADD accepts.
    prop_oneof![
        4 => Just(AddFlags::default()),
        1 => Just(AddFlags { nx: true, ..AddFlags::default() }),
        1 => Just(AddFlags { xx: true, ..AddFlags::default() }),
        1 => Just(AddFlags { gt: true, ..AddFlags::default() }),
        1 => Just(AddFlags { lt: true, ..AddFlags::default() }),
        1 => Just(AddFlags { xx: true, gt: true, ..AddFlags::default() }),
        2 => Just(AddFlags { incr: true, ..AddFlags::default() }),
        1 => Just(AddFlags { incr: true, lt: true, ..AddFlags::default() }),
    ]
}

fn score_range() -> impl Strategy<Value = ScoreRange> {
    (
        0..SCORES.len(),
        0..SCORES.len(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(a, b, x, y)| ScoreRange {
            min: SCORES[a],
            max: SCORES[b],
            min_exclusive: x,
            max_exclusive: y,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (any::<u8>(), 0..SCORES.len(), flags()).prop_map(|(m, s, f)| Op::Add(m, s, f)),
        3 => any::<u8>().prop_map(Op::Remove),
        2 => any::<u8>().prop_map(Op::Score),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(m, r)| Op::Rank(m, r)),
        1 => any::<u8>().prop_map(Op::Get),
        2 => (any::<i8>(), any::<i8>(), any::<bool>()).prop_map(|(a, b, r)| Op::RangeRank(a, b, r)),
        3 => (score_range(), -2i8..8, -2i8..8, any::<bool>())
            .prop_map(|(r, o, c, rev)| Op::RangeScore(r, o, c, rev)),
        1 => score_range().prop_map(Op::CountScore),
        1 => (-5i8..40, -40i8..40).prop_map(|(a, b)| Op::RemRank(a, b)),
        1 => score_range().prop_map(Op::RemScore),
        1 => (any::<bool>(), 0u8..5).prop_map(|(m, n)| Op::Pop(m, n)),
    ]
}

fn as_pairs(it: Iter<'_>) -> Vec<(Vec<u8>, f64)> {
    pairs(it)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A sorted set answers every operation as a sorted vector does,
    /// across the conversion from packed to big (small limits force it).
    #[test]
    fn behaves_like_a_sorted_vec(
        ops in prop::collection::vec(op(), 0..300),
        entries in 0usize..24,
        value in 0usize..24,
    ) {
        let l = limits(entries, value);
        let mut z = ZSet::new();
        let mut model = Model::default();
        let mut converted = false;
        for op in ops {
            match op {
                Op::Add(m, s, f) => {
                    let m = member(m);
                    let new = model.pos(&m).is_none() && !f.xx;
                    let want = model.add(&m, SCORES[s], f);
                    prop_assert_eq!(z.add(&m, SCORES[s], f, &l), want);
                    if new && (model.items.len() > entries || m.len() > value) {
                        converted = true;
                    }
                }
                Op::Remove(m) => {
                    let m = member(m);
                    let want = model.pos(&m).map(|i| model.items.remove(i).0);
                    prop_assert_eq!(z.remove(&m), want);
                }
                Op::Score(m) => {
                    let m = member(m);
                    let want = model.pos(&m).map(|i| model.items[i].0);
                    prop_assert_eq!(z.score(&m), want);
                }
                Op::Rank(m, rev) => {
                    let m = member(m);
                    let want = model.pos(&m).map(|i| if rev { model.items.len() - 1 - i } else { i });
                    prop_assert_eq!(z.rank(&m, rev), want);
                }
                Op::Get(i) => {
                    let i = usize::from(i) % (model.items.len() + 2);
                    let want = model.items.get(i).map(|(s, m)| (m.clone(), *s));
                    prop_assert_eq!(z.get(i).map(|(m, s)| (m.to_vec(), s)), want);
                }
                Op::RangeRank(a, b, rev) => {
                    let len = model.items.len();
                    let want = match rank_range(a.into(), b.into(), len) {
                        None => Vec::new(),
                        Some((x, y)) => {
                            let mut all: Vec<(Vec<u8>, f64)> =
                                model.items.iter().map(|(s, m)| (m.clone(), *s)).collect();
                            if rev {
                                all.reverse();
                            }
                            all[x..=y].to_vec()
                        }
                    };
                    let it = z.range_by_rank(a.into(), b.into(), rev);
                    prop_assert_eq!(it.len(), want.len());
                    prop_assert_eq!(as_pairs(it), want);
                }
                Op::RangeScore(r, o, c, rev) => {
                    let limit = Limit::new(o.into(), c.into());
                    let bounds = model.run(|s, _| r.contains(s));
                    let want = model.window(bounds, limit, rev);
                    let it = z.range_by_score(&r, limit, rev);
                    prop_assert_eq!(it.len(), want.len());
                    prop_assert_eq!(as_pairs(it), want);
                }
                Op::CountScore(r) => {
                    let want = model.items.iter().filter(|(s, _)| r.contains(*s)).count();
                    prop_assert_eq!(z.count_by_score(&r), want);
                }
                Op::RemRank(a, b) => {
                    let want = match rank_range(a.into(), b.into(), model.items.len()) {
                        None => 0,
                        Some((x, y)) => model.items.drain(x..=y).count(),
                    };
                    prop_assert_eq!(z.remove_range_by_rank(a.into(), b.into()), want);
                }
                Op::RemScore(r) => {
                    let before = model.items.len();
                    model.items.retain(|(s, _)| !r.contains(*s));
                    prop_assert_eq!(z.remove_range_by_score(&r), before - model.items.len());
                }
                Op::Pop(max, n) => {
                    let n = usize::from(n).min(model.items.len());
                    let want: Vec<(Vec<u8>, f64)> = if max {
                        let at = model.items.len() - n;
                        model.items.drain(at..).rev().map(|(s, m)| (m, s)).collect()
                    } else {
                        model.items.drain(..n).map(|(s, m)| (m, s)).collect()
                    };
                    prop_assert_eq!(z.pop(max, n), want);
                }
            }
            prop_assert_eq!(z.len(), model.items.len());
            prop_assert_eq!(z.is_packed(), !converted);
        }
        check(&z);
        let all: Vec<(Vec<u8>, f64)> = model.items.iter().map(|(s, m)| (m.clone(), *s)).collect();
        prop_assert_eq!(pairs(z.iter()), all.clone());
        let mut rev = all;
        rev.reverse();
        prop_assert_eq!(pairs(z.iter_rev()), rev);
        // Round trip through RDB keeps every member and score.
        if !z.is_empty() {
            let back = undump(&dump(&z), &l).unwrap().unwrap();
            prop_assert_eq!(pairs(back.iter()), pairs(z.iter()));
        }
    }
}

#[derive(Debug, Clone)]
enum LexOp {
    Add(u8),
    Remove(u8),
    Range(LexRange, i8, i8, bool),
    Count(LexRange),
    RemLex(LexRange),
    Pop(bool, u8),
}

fn lex_bound() -> impl Strategy<Value = LexBound> {
    prop_oneof![
        1 => Just(LexBound::Min),
        1 => Just(LexBound::Max),
        4 => any::<u8>().prop_map(|m| LexBound::Inclusive(member(m))),
        4 => any::<u8>().prop_map(|m| LexBound::Exclusive(member(m))),
    ]
}

fn lex_range() -> impl Strategy<Value = LexRange> {
    (lex_bound(), lex_bound()).prop_map(|(min, max)| LexRange { min, max })
}

fn lex_op() -> impl Strategy<Value = LexOp> {
    prop_oneof![
        6 => any::<u8>().prop_map(LexOp::Add),
        2 => any::<u8>().prop_map(LexOp::Remove),
        4 => (lex_range(), -2i8..8, -2i8..8, any::<bool>())
            .prop_map(|(r, o, c, rev)| LexOp::Range(r, o, c, rev)),
        2 => lex_range().prop_map(LexOp::Count),
        1 => lex_range().prop_map(LexOp::RemLex),
        1 => (any::<bool>(), 0u8..4).prop_map(|(m, n)| LexOp::Pop(m, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// With every score equal, member ranges answer as a sorted vector
    /// filtered by the range does, in both encodings.
    #[test]
    fn lex_ranges_behave_like_a_sorted_vec(
        ops in prop::collection::vec(lex_op(), 0..200),
        entries in 0usize..24,
    ) {
        let l = limits(entries, 64);
        let mut z = ZSet::new();
        let mut model = Model::default();
        for op in ops {
            match op {
                LexOp::Add(m) => {
                    let m = member(m);
                    let want = model.add(&m, 0.0, AddFlags::default());
                    prop_assert_eq!(z.add(&m, 0.0, AddFlags::default(), &l), want);
                }
                LexOp::Remove(m) => {
                    let m = member(m);
                    let want = model.pos(&m).map(|i| model.items.remove(i).0);
                    prop_assert_eq!(z.remove(&m), want);
                }
                LexOp::Range(r, o, c, rev) => {
                    let limit = Limit::new(o.into(), c.into());
                    let bounds = if r.is_empty() { (0, 0) } else { model.run(|_, m| r.contains(m)) };
                    let want = model.window(bounds, limit, rev);
                    let it = z.range_by_lex(&r, limit, rev);
                    prop_assert_eq!(it.len(), want.len());
                    prop_assert_eq!(as_pairs(it), want);
                }
                LexOp::Count(r) => {
                    let want = model.items.iter().filter(|(_, m)| r.contains(m)).count();
                    prop_assert_eq!(z.count_by_lex(&r), want);
                }
                LexOp::RemLex(r) => {
                    let before = model.items.len();
                    model.items.retain(|(_, m)| !r.contains(m));
                    prop_assert_eq!(z.remove_range_by_lex(&r), before - model.items.len());
                }
                LexOp::Pop(max, n) => {
                    let n = usize::from(n).min(model.items.len());
                    let want: Vec<(Vec<u8>, f64)> = if max {
                        let at = model.items.len() - n;
                        model.items.drain(at..).rev().map(|(s, m)| (m, s)).collect()
                    } else {
                        model.items.drain(..n).map(|(s, m)| (m, s)).collect()
                    };
                    prop_assert_eq!(z.pop(max, n), want);
                }
            }
            prop_assert_eq!(z.len(), model.items.len());
        }
        check(&z);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever the bytes, loading gives a consistent set or an error.
    #[test]
    fn any_bytes_load_or_fail(
        ty in prop::sample::select(vec![kind::ZSET, kind::ZSET_2, kind::ZSET_ZIPLIST, kind::ZSET_LISTPACK]),
        body in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut r = Reader::new(&body);
        if let Ok(Some(z)) = load(&mut r, ty, &limits(4, 8)) {
            check(&z);
            prop_assert!(!z.is_empty());
        }
    }
}

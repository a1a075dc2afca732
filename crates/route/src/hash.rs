//! Placement: which shard a key lives on.
//!
//! A key's shard is `jump(xxh64(key, seed 0), S)`: the 64-bit xxHash of its
//! raw bytes, then Lamping and Veach's jump consistent hash. This is exactly
//! what the original Go client computed (`cespare/xxhash.Sum64` and the
//! usual Go port of jump hash), so both clients agree on every key.

use twox_hash::XxHash64;

/// The 64-bit xxHash of `bytes` with seed 0, as Go's `xxhash.Sum64`.
pub fn key_hash(bytes: &[u8]) -> u64 {
    XxHash64::oneshot(0, bytes)
}

/// Jump consistent hash: the bucket in `0..buckets` for `hash`.
///
/// Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm"
/// (2014), written out here rather than taken from a crate so that the float
/// arithmetic is visibly the Go port's: growing `buckets` by one moves a
/// hash only to the new bucket, or not at all. With no buckets (`0`) the
/// answer is `0`, so the function is total.
pub fn jump(mut hash: u64, buckets: u32) -> u32 {
    let buckets = i64::from(buckets);
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < buckets {
        b = j;
        hash = hash.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // Go: int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1))).
        // `as` truncates toward zero like Go's conversion; it saturates only
        // past 2^63, far beyond any `buckets`, where the loop ends either way.
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((hash >> 33) + 1) as f64)) as i64;
    }
    // `b` is in `0..buckets`, or -1 when there are no buckets.
    b.max(0) as u32
}

/// The part of `key` that is hashed when hash tags are on: Redis Cluster's
/// rule.
///
/// If the key holds a `{`, and a `}` after it, and at least one byte between
/// the first `{` and the next `}`, only those bytes are hashed, so
/// `{user1}.name` and `{user1}.mail` share a shard. Otherwise the whole key
/// is hashed.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn xxh64_matches_go() {
        assert_eq!(key_hash(b"foo"), 0x33bf_00a8_59c4_ba3f);
        assert_eq!(key_hash(b""), 0xef46_db37_51d8_e999);
    }

    #[test]
    fn jump_matches_go() {
        let got: Vec<u32> = (1..=8).map(|n| jump(0xdead_beef, n)).collect();
        assert_eq!(got, [0, 1, 2, 3, 3, 5, 5, 5]);
        assert_eq!(jump(key_hash(b"foo"), 5), 3);
        assert_eq!(jump(key_hash(b"foo"), 10), 8);
        assert_eq!(jump(key_hash(b"foo"), 16), 10);
        assert_eq!(jump(key_hash(b""), 10), 7);
        assert_eq!(jump(key_hash(b""), 100), 40);
    }

    #[test]
    fn jump_edges() {
        assert_eq!(jump(12345, 0), 0);
        assert_eq!(jump(u64::MAX, 1), 0);
        assert!(jump(u64::MAX, u32::MAX) < u32::MAX);
    }

    #[test]
    fn hash_tags() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"{user1}.name", b"user1"),
            (b"pre{user1}post", b"user1"),
            (b"{}.name", b"{}.name"),
            (b"{user1", b"{user1"),
            (b"user1}", b"user1}"),
            (b"{a}{b}", b"a"),
            (b"{{a}}", b"{a"),
            (b"}{a}", b"a"),
            (b"{}{a}", b"{}{a}"),
            (b"", b""),
        ];
        for (key, tag) in cases {
            assert_eq!(hash_tag(key), *tag, "{}", String::from_utf8_lossy(key));
        }
    }

    proptest! {
        #[test]
        fn jump_is_in_range_and_deterministic(hash: u64, buckets in 1u32..10_000) {
            let b = jump(hash, buckets);
            prop_assert!(b < buckets);
            prop_assert_eq!(b, jump(hash, buckets));
        }

        #[test]
        fn adding_a_shard_moves_keys_only_to_it(key: Vec<u8>, buckets in 1u32..2_000) {
            let h = key_hash(&key);
            let before = jump(h, buckets);
            let after = jump(h, buckets + 1);
            prop_assert!(after == before || after == buckets);
        }
    }
}

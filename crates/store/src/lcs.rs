//! The longest common subsequence of two strings (LCS), with the matching
//! ranges Redis 7.0 reports.

/// One run of consecutive bytes common to both strings: inclusive ranges
/// in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// Where the run lies in the first string.
    pub a: (u32, u32),
    /// Where it lies in the second.
    pub b: (u32, u32),
}

impl Match {
    /// The run's length.
    pub fn len(&self) -> u32 {
        self.a.1 - self.a.0 + 1
    }

    /// Whether the run is empty (it never is).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// What LCS computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lcs {
    /// The common subsequence itself.
    pub text: Vec<u8>,
    /// Its runs, from the end of the strings backwards, as Redis lists
    /// them.
    pub matches: Vec<Match>,
}

/// The bytes of working memory [`lcs`] needs for strings of these lengths
/// (Redis refuses past `proto-max-bulk-len`); `None` if it does not fit a
/// `u64`.
pub fn table_bytes(a_len: usize, b_len: usize) -> Option<u64> {
    (a_len as u64 + 1)
        .checked_mul(b_len as u64 + 1)?
        .checked_mul(4)
}

/// The LCS of `a` and `b` by the classic dynamic-programming table, and the
/// walk back through it that Redis does, which decides which of several
/// equally long subsequences is reported. Both must be shorter than
/// `u32::MAX - 1` bytes.
pub fn lcs(a: &[u8], b: &[u8]) -> Lcs {
    let (n, m) = (a.len(), b.len());
    let w = m + 1;
    // table[i * w + j]: the LCS length of a[..i] and b[..j].
    let mut table = vec![0u32; (n + 1) * w];
    for i in 1..=n {
        for j in 1..=m {
            table[i * w + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * w + j - 1] + 1
            } else {
                table[(i - 1) * w + j].max(table[i * w + j - 1])
            };
        }
    }
    let mut text = vec![0u8; table[n * w + m] as usize];
    let mut left = text.len();
    let mut matches = Vec::new();
    // The run being collected, as (a start, a end, b start, b end).
    let mut run: Option<(u32, u32, u32, u32)> = None;
    let (mut i, mut j) = (n, m);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            left -= 1;
            text[left] = a[i - 1];
            let (ai, bj) = ((i - 1) as u32, (j - 1) as u32);
            run = match run {
                None => Some((ai, ai, bj, bj)),
                // Walking back, the next byte of a run sits just before.
                Some((as_, ae, bs, be)) if as_ == ai + 1 && bs == bj + 1 => Some((ai, ae, bj, be)),
                Some(r) => {
                    emit = true;
                    Some(r)
                }
            };
            if run.is_some_and(|(as_, _, bs, _)| as_ == 0 || bs == 0) {
                emit = true;
            }
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * w + j] > table[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = run.is_some();
        }
        if emit && let Some((as_, ae, bs, be)) = run.take() {
            matches.push(Match {
                a: (as_, ae),
                b: (bs, be),
            });
        }
    }
    Lcs { text, matches }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_documentation_example() {
        let r = lcs(b"ohmytext", b"mynewtext");
        assert_eq!(r.text, b"mytext");
        assert_eq!(
            r.matches,
            [
                Match {
                    a: (4, 7),
                    b: (5, 8)
                },
                Match {
                    a: (2, 3),
                    b: (0, 1)
                },
            ]
        );
        assert_eq!(r.matches[0].len(), 4);
    }

    #[test]
    fn empty_and_disjoint() {
        assert_eq!(lcs(b"", b"abc").text, b"");
        let r = lcs(b"abc", b"xyz");
        assert!(r.text.is_empty() && r.matches.is_empty());
        assert_eq!(table_bytes(1, 1), Some(16));
    }
}

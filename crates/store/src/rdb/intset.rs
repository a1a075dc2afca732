//! Intsets: sorted arrays of integers, the encoding of small integer sets
//! (RDB type 11). Read only, since the keyspace has no sets yet.
//!
//! ```text
//! <width: u32 LE, 2, 4 or 8> <count: u32 LE> <count integers of that width, LE, ascending>
//! ```

/// The members of `is`, checked as Redis's deep validation
/// (`intsetValidateIntegrity`) checks them: a known width, a size that
/// matches the count, at least one member, strictly ascending.
pub fn decode(is: &[u8]) -> Result<Vec<i64>, &'static str> {
    let header = is.get(..8).ok_or("intset shorter than its header")?;
    let width = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err("intset has an invalid encoding");
    }
    let count = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if count.checked_mul(width).and_then(|n| n.checked_add(8)) != Some(is.len()) {
        return Err("intset size does not match its count");
    }
    if count == 0 {
        return Err("intset is empty");
    }
    let members: Vec<i64> = is[8..]
        .chunks_exact(width)
        .map(|c| match width {
            2 => i64::from(i16::from_le_bytes([c[0], c[1]])),
            4 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            _ => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        })
        .collect();
    if members.windows(2).any(|w| w[0] >= w[1]) {
        return Err("intset members are not in ascending order");
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_made_intsets() {
        let is = [2, 0, 0, 0, 3, 0, 0, 0, 0xFF, 0xFF, 1, 0, 0x10, 0x27];
        assert_eq!(decode(&is), Ok(vec![-1, 1, 10_000]));
        let mut is = vec![8, 0, 0, 0, 2, 0, 0, 0];
        is.extend_from_slice(&i64::MIN.to_le_bytes());
        is.extend_from_slice(&i64::MAX.to_le_bytes());
        assert_eq!(decode(&is), Ok(vec![i64::MIN, i64::MAX]));
        let is = [4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x80];
        assert_eq!(decode(&is), Ok(vec![i64::from(i32::MIN)]));
    }

    #[test]
    fn corrupt_intsets_are_errors() {
        let good = [2u8, 0, 0, 0, 2, 0, 0, 0, 1, 0, 2, 0];
        assert!(decode(&good).is_ok());
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err());
        }
        // Width 3, out of order, duplicates, empty, a count that overflows.
        assert!(decode(&[3, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3]).is_err());
        assert!(decode(&[2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 1, 0]).is_err());
        assert!(decode(&[2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 1, 0]).is_err());
        assert!(decode(&[2, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode(&[8, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
    }
}

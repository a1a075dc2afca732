//! The CRC64 of RDB trailers: Redis's `crc64.c` (Jones polynomial,
//! reflected in and out, no final xor), from the `crc` crate.

use crc::{CRC_64_REDIS, Crc, Digest, Table};

/// Slicing by 16: RDB files are large, and the tables (32 KiB) are built
/// once, at compile time.
static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// A running checksum.
pub struct Crc64(Digest<'static, u64, Table<16>>);

impl Crc64 {
    /// A checksum of nothing yet.
    pub fn new() -> Self {
        Crc64(CRC64.digest())
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The checksum of everything added.
    pub fn finish(self) -> u64 {
        self.0.finalize()
    }
}

impl Default for Crc64 {
    fn default() -> Self {
        Crc64::new()
    }
}

impl std::fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Crc64")
    }
}

/// The checksum of `bytes`.
pub fn crc64(bytes: &[u8]) -> u64 {
    CRC64.checksum(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_test_vector() {
        // From Redis's crc64.c self test.
        assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
        let mut running = Crc64::new();
        running.update(b"1234");
        running.update(b"56789");
        assert_eq!(running.finish(), 0xe9c6d914c4b8d9ca);
        // The second one takes `sizeof`, so the C string's NUL too.
        let lorem = concat!(
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed ",
            "do eiusmod tempor incididunt ut labore et dolore magna ",
            "aliqua. Ut enim ad minim veniam, quis nostrud exercitation ",
            "ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis ",
            "aute irure dolor in reprehenderit in voluptate velit esse ",
            "cillum dolore eu fugiat nulla pariatur. Excepteur sint ",
            "occaecat cupidatat non proident, sunt in culpa qui officia ",
            "deserunt mollit anim id est laborum.\0"
        );
        assert_eq!(crc64(lorem.as_bytes()), 0xc7794709e69683b3);
    }
}

//! Ceph's seed-0 CRC-32C (spec §4).

/// Ceph's `ceph_crc32c(seed, data)`: CRC-32C (Castagnoli) with **no** initial or final
/// inversion. Every msgr v1 CRC uses seed 0; the CRC of an empty buffer with seed 0 is 0.
///
/// Chaining works as in Ceph: `crc32c(crc32c(0, a), b) == crc32c(0, a ++ b)`.
/// Built on the `crc32c` crate, which uses the SSE 4.2 / ARMv8 instructions when present.
#[inline]
pub fn crc32c(seed: u32, data: &[u8]) -> u32 {
    // Empty segments (most middles, many fronts) are common: skip the crate's set-up.
    if data.is_empty() {
        return seed;
    }
    !crc32c::crc32c_append(!seed, data)
}

#[cfg(test)]
mod tests {
    use super::crc32c;

    #[test]
    fn known_answers_from_spec() {
        assert_eq!(crc32c(0, b"foo bar baz"), 4_119_623_852);
        assert_eq!(crc32c(1234, b"foo bar baz"), 881_700_046);
        assert_eq!(crc32c(0, b"whiz bang boom"), 2_360_230_088);
        assert_eq!(crc32c(5678, b"whiz bang boom"), 3_743_019_208);
        assert_eq!(crc32c(0, &[1u8; 5]), 2_715_569_182);
        assert_eq!(crc32c(0, &[1u8; 35]), 440_531_800);
    }

    #[test]
    fn empty_is_seed() {
        assert_eq!(crc32c(0, b""), 0);
        assert_eq!(crc32c(77, b""), 77);
    }

    #[test]
    fn chaining_equals_one_pass() {
        let data = b"the quick brown fox jumps over the lazy dog";
        let (a, b) = data.split_at(17);
        assert_eq!(crc32c(crc32c(0, a), b), crc32c(0, data));
    }
}

//! Ceph's seed-0 CRC-32C (spec §4).
//!
//! On x86_64 with SSE 4.2 and PCLMULQDQ (detected at run time), inputs of at least
//! [`LANES_MIN`] bytes are cut into four long lanes run through four independent chains of
//! the `crc32` instruction at once (it has a latency of 3 cycles and a throughput of 1 per
//! cycle), and the lane CRCs are combined with carry-less multiplications by x^(8·k·lane)
//! mod P (computed once per call from the compile-time table [`SHIFT_TABLE`]); shorter inputs
//! go through one `crc32` chain. Inputs of at least [`WIDE_MIN`] bytes on a CPU with AVX-512
//! and VPCLMULQDQ go to the `crc-fast` crate instead, which folds 64 bytes per carry-less
//! multiplication beside `crc32` chains. Elsewhere, the `crc32c` crate is used.
//!
//! Measured on the AMD EPYC (family 25) development machine against the crate (which cuts a
//! 4 KiB buffer into five 768-byte chunks combined with table shifts, plus a serial 256-byte
//! tail): the lanes run at the `crc32` unit's throughput (~25 GB/s) from 4 KiB on. PCLMULQDQ
//! folding (8 accumulators, or 4 beside `crc32` lanes) was tried and was slower there: about
//! one PCLMULQDQ per 2 cycles, and it did not overlap with the `crc32` instructions. On the
//! Xeon with AVX-512 (Sapphire Rapids) of 2026-12-07, the lanes ran at 21–23 GB/s and
//! `crc-fast`'s 512-bit folding at 41 GB/s at 2 KiB, 52 GB/s at 4 KiB, 85 GB/s at 64 KiB and
//! 30 GB/s (against 24) on 4 MiB that has left the cache; below about 1.8 KiB its block
//! structure leaves tails that made it slower than the lanes at some lengths (1,536 bytes:
//! 73 ns against 69), hence the threshold.

/// Ceph's `ceph_crc32c(seed, data)`: CRC-32C (Castagnoli) with **no** initial or final
/// inversion. Every msgr v1 CRC uses seed 0; the CRC of an empty buffer with seed 0 is 0.
///
/// Chaining works as in Ceph: `crc32c(crc32c(0, a), b) == crc32c(0, a ++ b)`.
///
/// Always inlined: a small message's header, front and data CRCs on each end (six to
/// eight calls per message) each paid a call, its frame and the length test before the
/// kernel's own call (callgrind: about 15 instructions per CRC).
#[inline(always)]
pub fn crc32c(seed: u32, data: &[u8]) -> u32 {
    // Empty segments (most middles, many fronts) are common: skip any set-up.
    if data.is_empty() {
        return seed;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(crc) = x86::crc32c(seed, data) {
        return crc;
    }
    crate_crc32c(seed, data)
}

/// The CRC with seed `to` of the `len` bytes whose CRC with seed `from` is `crc`, without
/// reading them: `crc32c_reseed(crc32c(a, d), a, b, d.len()) == crc32c(b, d)`.
///
/// With no inversions the CRC is linear in the seed: crc(s, d) = crc(0, d) ^ s·x^(8·len)
/// mod P, so changing the seed adds (a ^ b)·x^(8·len), one carry-less multiplication chain
/// of O(log len) steps on x86_64. msgr2 hashes its segments from seed `0xffffffff` where
/// msgr v1 uses 0: a message whose CRCs were computed for v1 when it was queued is sent on
/// msgr2 without hashing its bytes a second time.
pub fn crc32c_reseed(crc: u32, from: u32, to: u32, len: usize) -> u32 {
    let delta = from ^ to;
    if delta == 0 || len == 0 {
        return crc ^ delta;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(moved) = x86::shift(delta, len) {
        return crc ^ moved;
    }
    // Elsewhere: the delta moved over `len` zero bytes, the slow way.
    let zeros = [0u8; 4096];
    let mut moved = delta;
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len());
        moved = crate_crc32c(moved, zeros.get(..n).unwrap_or_default());
        left -= n;
    }
    crc ^ moved
}

/// The reference: the `crc32c` crate, with Ceph's convention (no inversions).
#[inline]
fn crate_crc32c(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

/// From this many bytes on, on a CPU with AVX-512 and VPCLMULQDQ, `crc-fast`'s 512-bit
/// folding (see the module's doc for the measurements).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const WIDE_MIN: usize = 2048;

/// From this many bytes on, the multi-lane `crc32` kernel; below, one `crc32` chain (whose
/// latency, 3 cycles per 8 bytes, is then less than the lanes' set-up and combination).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const LANES_MIN: usize = 192;

/// The reflected CRC-32C polynomial: P(x) = x^32 + ..., without its x^32 term, bit `i`
/// holding the coefficient of x^(31-i).
const POLY: u32 = 0x82F6_3B78;

/// x^n mod P in the reflected 32-bit form (bit `i` = coefficient of x^(31-i)).
///
/// Starts at x^0 (bit 31 set) and multiplies by x n times: a right shift, and where the
/// coefficient of x^31 overflows into x^32, x^32 ≡ P - x^32 = `POLY`. Only evaluated in
/// constants (at most ~1,100 steps).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const fn xpow_mod_p(n: u32) -> u32 {
    let mut r: u32 = 0x8000_0000;
    let mut i = 0;
    while i < n {
        r = if r & 1 != 0 { (r >> 1) ^ POLY } else { r >> 1 };
        i += 1;
    }
    r
}

/// x^-n mod P (x is invertible mod P since P(0) = 1): the inverse of [`xpow_mod_p`]'s step.
///
/// Dividing by x: where the coefficient of x^0 (bit 31) is set, first add P (which clears
/// it and adds x^32), then every x^k becomes x^(k-1) (a left shift), x^32 becoming x^31
/// (bit 0).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const fn xpow_neg_mod_p(n: u32) -> u32 {
    let mut r: u32 = 0x8000_0000;
    let mut i = 0;
    while i < n {
        r = if r & 0x8000_0000 != 0 {
            ((r ^ POLY) << 1) | 1
        } else {
            r << 1
        };
        i += 1;
    }
    r
}

/// a·b mod P, both and the result in the reflected 32-bit form (compile-time use only).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const fn mul_mod_p(a: u32, b: u32) -> u32 {
    let mut r = 0;
    let mut a_xk = a; // a·x^k
    let mut k = 0;
    while k < 32 {
        // Bit 31 - k of b is its coefficient of x^k.
        if b & (0x8000_0000 >> k) != 0 {
            r ^= a_xk;
        }
        a_xk = if a_xk & 1 != 0 {
            (a_xk >> 1) ^ POLY
        } else {
            a_xk >> 1
        };
        k += 1;
    }
    r
}

/// `SHIFT_TABLE[i]` = x^(2^i - 33) mod P, for building the multiplier x^(8n - 33) that
/// moves a CRC state over `n` zero bytes (see `x86::shift_multiplier`).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const SHIFT_TABLE: [u32; 64] = {
    let mut t = [0u32; 64];
    let mut x_2i = xpow_mod_p(1); // x^(2^i)
    let x_m33 = xpow_neg_mod_p(33);
    let mut i = 0;
    while i < 64 {
        t[i] = mul_mod_p(x_2i, x_m33);
        x_2i = mul_mod_p(x_2i, x_2i);
        i += 1;
    }
    t
};

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use super::{xpow_neg_mod_p, LANES_MIN, SHIFT_TABLE, WIDE_MIN};
    use std::arch::x86_64::{
        _mm_clmulepi64_si128, _mm_crc32_u64, _mm_crc32_u8, _mm_cvtsi128_si64, _mm_cvtsi32_si128,
    };

    /// x^-33 mod P.
    const X_NEG33: u32 = xpow_neg_mod_p(33);

    /// Independent `crc32` chains of the lanes kernel: the instruction's latency is 3
    /// cycles and one can start per cycle, so 3 suffice; 4 measured the same at 64 KiB and
    /// a little faster at 4 KiB (4 lanes of 1 KiB, no tail).
    const LANES: usize = 4;
    /// Words per lane per unrolled step of the lanes kernel.
    const LANE_UNROLL: usize = 8;

    /// The fast path for this CPU, or `None` when it lacks the instructions.
    #[inline(always)]
    pub(super) fn crc32c(seed: u32, data: &[u8]) -> Option<u32> {
        if data.len() >= LANES_MIN {
            long(seed, data)
        } else {
            serial(seed, data)
        }
    }

    /// The `crc32`-instruction kernel (any length), if the CPU has SSE 4.2.
    #[inline(always)]
    pub(super) fn serial(seed: u32, data: &[u8]) -> Option<u32> {
        if is_x86_feature_detected!("sse4.2") {
            // SAFETY: SSE 4.2 was detected just above.
            Some(unsafe { serial_sse42(seed, data) })
        } else {
            None
        }
    }

    /// The kernel for [`LANES_MIN`] bytes or more: the wide one from [`WIDE_MIN`] bytes on
    /// where the CPU has it, else the multi-lane `crc32` kernel.
    #[inline]
    pub(super) fn long(seed: u32, data: &[u8]) -> Option<u32> {
        if data.len() >= WIDE_MIN {
            if let Some(crc) = wide(seed, data) {
                return Some(crc);
            }
        }
        lanes(seed, data)
    }

    /// `crc-fast`'s CRC-32C (any length), if the CPU has AVX-512 (F and VL) and VPCLMULQDQ,
    /// where it folds the input 64 bytes at a time with 512-bit carry-less multiplications.
    #[inline]
    pub(super) fn wide(seed: u32, data: &[u8]) -> Option<u32> {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("vpclmulqdq")
        {
            // The crate's state is the CRC register before the final inversion (its
            // CRC-32/ISCSI inverts on the way in and out, Ceph's does neither): starting it
            // at `seed` and undoing the final inversion gives Ceph's CRC.
            let mut digest = crc_fast::Digest::new_with_init_state(
                crc_fast::CrcAlgorithm::Crc32Iscsi,
                u64::from(seed),
            );
            digest.update(data);
            Some(!(digest.finalize() as u32))
        } else {
            None
        }
    }

    /// The multi-lane `crc32` kernel (any length), if the CPU has SSE 4.2 and PCLMULQDQ.
    #[inline]
    pub(super) fn lanes(seed: u32, data: &[u8]) -> Option<u32> {
        if is_x86_feature_detected!("sse4.2") && is_x86_feature_detected!("pclmulqdq") {
            // SAFETY: SSE 4.2 and PCLMULQDQ were detected just above.
            Some(unsafe { lanes_crc32(seed, data) })
        } else {
            None
        }
    }

    /// Ceph's CRC-32C with the `crc32` instruction, one 8-byte word per step.
    ///
    /// # Safety
    /// The CPU must support SSE 4.2.
    #[target_feature(enable = "sse4.2")]
    unsafe fn serial_sse42(seed: u32, data: &[u8]) -> u32 {
        let mut crc = u64::from(seed);
        let mut rest = data;
        while let Some((word, tail)) = rest.split_first_chunk::<8>() {
            crc = _mm_crc32_u64(crc, u64::from_le_bytes(*word));
            rest = tail;
        }
        // The instruction leaves the upper 32 bits zero.
        let mut crc = crc as u32;
        for &byte in rest {
            crc = _mm_crc32_u8(crc, byte);
        }
        crc
    }

    /// Reads the little-endian u64 at `p`.
    ///
    /// # Safety
    /// `p .. p + 8` must be readable. No alignment is needed.
    #[inline]
    unsafe fn word(p: *const u8) -> u64 {
        u64::from_le(std::ptr::read_unaligned(p.cast::<u64>()))
    }

    /// a·b·x^33 mod P for reflected 32-bit `a`, `b`: their carry-less product Q (63 bits,
    /// bit `k` = coefficient of x^(62-k)) read by one `crc32` step from 0 as a 64-bit word
    /// (bit `k` = x^(63-k), i.e. Q·x) which it multiplies by x^32 and reduces.
    #[inline]
    #[target_feature(enable = "sse4.2,pclmulqdq")]
    unsafe fn mul_x33(a: u32, b: u32) -> u32 {
        let q =
            _mm_clmulepi64_si128::<0x00>(_mm_cvtsi32_si128(a as i32), _mm_cvtsi32_si128(b as i32));
        _mm_crc32_u64(0, _mm_cvtsi128_si64(q) as u64) as u32
    }

    /// x^(8n - 33) mod P: `mul_x33(crc, shift_multiplier(n))` is `crc` moved over `n` zero
    /// bytes, crc·x^(8n) mod P. Built from [`SHIFT_TABLE`] (x^(2^i - 33)) one set bit of 8n
    /// at a time, starting from x^-33, the identity of `mul_x33`: each step multiplies by
    /// x^(2^i - 33)·x^33 = x^(2^i).
    #[inline]
    #[target_feature(enable = "sse4.2,pclmulqdq")]
    pub(super) unsafe fn shift_multiplier(n: usize) -> u32 {
        let mut bits = (n as u64) << 3;
        let mut acc = X_NEG33;
        while bits != 0 {
            if let Some(&e) = SHIFT_TABLE.get(bits.trailing_zeros() as usize) {
                acc = mul_x33(acc, e);
            }
            bits &= bits - 1;
        }
        acc
    }

    /// `crc` moved over `n` zero bytes (crc·x^(8n) mod P), if the CPU has SSE 4.2 and
    /// PCLMULQDQ.
    #[inline]
    pub(super) fn shift(crc: u32, n: usize) -> Option<u32> {
        if is_x86_feature_detected!("sse4.2") && is_x86_feature_detected!("pclmulqdq") {
            // SAFETY: SSE 4.2 and PCLMULQDQ were detected just above.
            Some(unsafe { mul_x33(crc, shift_multiplier(n)) })
        } else {
            None
        }
    }

    /// Ceph's CRC-32C with [`LANES`] independent `crc32` chains.
    ///
    /// With q = len / (8·LANES) words per lane, the input is cut into [`LANES`] lanes of
    /// `lane` = 8·q bytes and a tail shorter than 8·LANES bytes. The lanes advance together
    /// (the first chain from `seed`, the others from 0), [`LANE_UNROLL`] words per step,
    /// so the chains overlap in the pipeline; then each lane is appended by linearity,
    /// crc(s, A ++ B) = crc(s, A)·x^(8|B|) ^ crc(0, B), with the multiplier for `lane`
    /// bytes (computed once per call, off the chains' critical path); the tail follows
    /// with `crc32` steps.
    ///
    /// # Safety
    /// The CPU must support SSE 4.2 and PCLMULQDQ.
    #[target_feature(enable = "sse4.2,pclmulqdq")]
    pub(super) unsafe fn lanes_crc32(seed: u32, data: &[u8]) -> u32 {
        let q = data.len() / (8 * LANES);
        if q == 0 {
            return serial_sse42(seed, data);
        }
        let lane = 8 * q;
        let Some((body, tail)) = data.split_at_checked(lane * LANES) else {
            return serial_sse42(seed, data);
        };
        let k = shift_multiplier(lane);
        let base = body.as_ptr();
        let mut c = [0u64; LANES];
        if let Some(c0) = c.first_mut() {
            *c0 = u64::from(seed);
        }
        // SAFETY (every `word` below): lane j is body[j·lane .. (j+1)·lane], and every word
        // read from it starts at a multiple of 8 below `lane` (= 8·q): `at` < 8·q steps
        // through whole unrolled blocks, then single words, up to 8·q.
        let blocks = q / LANE_UNROLL;
        let mut at = 0;
        for _ in 0..blocks {
            for w in 0..LANE_UNROLL {
                for (j, cj) in c.iter_mut().enumerate() {
                    *cj = _mm_crc32_u64(*cj, word(base.add(j * lane + at + 8 * w)));
                }
            }
            at += 8 * LANE_UNROLL;
        }
        while at < lane {
            for (j, cj) in c.iter_mut().enumerate() {
                *cj = _mm_crc32_u64(*cj, word(base.add(j * lane + at)));
            }
            at += 8;
        }
        // Lane j (of LANES) moves over the (LANES - 1 - j) lanes after it: multipliers for
        // lane, 2·lane, ... bytes (mul_x33(x^(a-33), x^(b-33)) = x^(a+b-33)), so that the
        // lanes' CRCs are combined in parallel, one multiplication deep.
        // kpow[i]: the multiplier for (i + 1)·lane bytes.
        let mut kpow = [k; LANES];
        let mut acc = k;
        for kp in kpow.iter_mut().skip(1) {
            acc = mul_x33(acc, k);
            *kp = acc;
        }
        let mut crc = 0u32;
        for (j, &cj) in c.iter().enumerate() {
            crc ^= match (LANES - 1 - j).checked_sub(1).and_then(|i| kpow.get(i)) {
                Some(&kj) => mul_x33(cj as u32, kj),
                None => cj as u32,
            };
        }
        serial_sse42(crc, tail)
    }
}

#[cfg(test)]
mod tests {
    use super::{crate_crc32c, crc32c, mul_mod_p, xpow_mod_p, xpow_neg_mod_p, SHIFT_TABLE};
    use proptest::prelude::*;

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

    /// A fixed pseudo-random buffer (xorshift64*).
    fn buffer(len: usize, mut state: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    /// Every implementation available on this machine, each checked against the crate.
    fn check_all(seed: u32, data: &[u8]) {
        let want = crate_crc32c(seed, data);
        assert_eq!(crc32c(seed, data), want, "crc32c, len {}", data.len());
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(got) = super::x86::serial(seed, data) {
                assert_eq!(got, want, "serial kernel, len {}", data.len());
            }
            if let Some(got) = super::x86::lanes(seed, data) {
                assert_eq!(got, want, "lanes kernel, len {}", data.len());
            }
            if let Some(got) = super::x86::wide(seed, data) {
                assert_eq!(got, want, "wide kernel, len {}", data.len());
            }
        }
    }

    #[test]
    fn the_kernels_run_here() {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("sse4.2") {
                assert!(super::x86::serial(0, b"x").is_some());
            }
            if is_x86_feature_detected!("sse4.2") && is_x86_feature_detected!("pclmulqdq") {
                assert!(super::x86::lanes(0, b"x").is_some());
            }
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("vpclmulqdq")
            {
                assert!(super::x86::wide(0, b"x").is_some());
            }
        }
    }

    #[test]
    fn xpow_constants() {
        // x^0 .. x^31 are single bits; x^32 is P minus its x^32 term.
        assert_eq!(xpow_mod_p(0), 0x8000_0000);
        assert_eq!(xpow_mod_p(31), 1);
        assert_eq!(xpow_mod_p(32), super::POLY);
        // Multiplying by x^(8n) mod P is the CRC of n zero bytes from that state.
        for n in [1usize, 4, 16, 100] {
            let state = xpow_mod_p(0);
            assert_eq!(xpow_mod_p(8 * n as u32), crate_crc32c(state, &vec![0; n]));
        }
    }

    #[test]
    fn inverse_and_table() {
        for n in [0, 1, 31, 32, 33, 100] {
            assert_eq!(
                mul_mod_p(xpow_mod_p(n), xpow_neg_mod_p(n)),
                xpow_mod_p(0),
                "n {n}"
            );
        }
        assert_eq!(mul_mod_p(xpow_mod_p(0), 0x1234_5678), 0x1234_5678);
        assert_eq!(mul_mod_p(xpow_mod_p(40), xpow_mod_p(60)), xpow_mod_p(100));
        // SHIFT_TABLE[i] = x^(2^i - 33): times x^33 is x^(2^i), checked by stepping where
        // that is cheap, and by squaring for the rest.
        let x33 = xpow_mod_p(33);
        for (i, &t) in SHIFT_TABLE.iter().enumerate().take(16) {
            assert_eq!(mul_mod_p(t, x33), xpow_mod_p(1 << i), "i {i}");
        }
        for i in 1..SHIFT_TABLE.len() {
            let prev = mul_mod_p(SHIFT_TABLE[i - 1], x33);
            assert_eq!(
                mul_mod_p(SHIFT_TABLE[i], x33),
                mul_mod_p(prev, prev),
                "i {i}"
            );
        }
    }

    /// Moving a state over n zero bytes with the multiplier equals feeding n zero bytes.
    #[test]
    fn shift_equals_zero_bytes() {
        #[cfg(target_arch = "x86_64")]
        for n in [1usize, 7, 8, 24, 100, 1360, 4096, 65_536, 1 << 20] {
            let zeros = vec![0u8; n];
            for crc in [1u32, 0x8000_0000, 0xDEAD_BEEF, 0xFFFF_FFFF] {
                if let Some(got) = super::x86::shift(crc, n) {
                    assert_eq!(got, crate_crc32c(crc, &zeros), "n {n}, crc {crc:#x}");
                }
            }
        }
    }

    /// Changing the seed of a computed CRC equals hashing the bytes again with the new seed,
    /// for msgr2's seed (-1) from v1's (0) and for arbitrary pairs, empty input included.
    #[test]
    fn reseed_equals_hashing_again() {
        for n in [0usize, 1, 7, 64, 191, 192, 4096, 65_537, 1 << 20] {
            let data = buffer(n, 0x0123_4567_89AB_CDEF ^ n as u64);
            for (from, to) in [(0u32, u32::MAX), (u32::MAX, 0), (5, 0xDEAD_BEEF), (7, 7)] {
                let crc = crc32c(from, &data);
                assert_eq!(
                    super::crc32c_reseed(crc, from, to, n),
                    crc32c(to, &data),
                    "n {n}, {from:#x} -> {to:#x}"
                );
            }
        }
    }

    #[test]
    fn every_length_up_to_2100() {
        let data = buffer(2_100 + 16, 0x1234_5678_9ABC_DEF0);
        for len in 0..=2_100 {
            check_all(0, &data[..len]);
            check_all(0xDEAD_BEEF, &data[..len]);
            // Misaligned start.
            check_all(0x0BAD_F00D, &data[3..3 + len]);
        }
    }

    #[test]
    fn message_sizes() {
        let data = buffer((4 << 20) + 64, 42);
        for len in [4096, 4096 + 53, 65_536, 4 << 20] {
            for start in [0, 1, 7, 13] {
                check_all(0, &data[start..start + len]);
                check_all(0xFFFF_FFFF, &data[start..start + len]);
            }
        }
    }

    #[test]
    fn all_ones_and_zeros() {
        for len in [128, 129, 255, 256, 4096, 65_536] {
            check_all(0, &vec![0u8; len]);
            check_all(0xFFFF_FFFF, &vec![0u8; len]);
            check_all(0, &vec![0xFFu8; len]);
            check_all(0x1234_5678, &vec![0xFFu8; len]);
        }
    }

    #[test]
    fn chaining_long() {
        let data = buffer(20_000, 7);
        for split in [0, 1, 53, 127, 128, 129, 4096, 10_000, 19_999, 20_000] {
            let (a, b) = data.split_at(split);
            for seed in [0, 1, 0xFFFF_FFFF] {
                assert_eq!(crc32c(crc32c(seed, a), b), crc32c(seed, &data));
                assert_eq!(crc32c(seed, &data), crate_crc32c(seed, &data));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn matches_the_crate(
            seed in any::<u32>(),
            len in 0usize..=70_000,
            start in 0usize..64,
            fill in any::<u64>(),
        ) {
            let data = buffer(start + len, fill | 1);
            let slice = &data[start..];
            let want = crate_crc32c(seed, slice);
            prop_assert_eq!(crc32c(seed, slice), want);
            #[cfg(target_arch = "x86_64")]
            {
                if let Some(got) = super::x86::serial(seed, slice) {
                    prop_assert_eq!(got, want);
                }
                if let Some(got) = super::x86::lanes(seed, slice) {
                    prop_assert_eq!(got, want);
                }
                if let Some(got) = super::x86::wide(seed, slice) {
                    prop_assert_eq!(got, want);
                }
            }
        }

        #[test]
        fn chaining_matches_one_pass(
            seed in any::<u32>(),
            a in proptest::collection::vec(any::<u8>(), 0..3_000),
            b in proptest::collection::vec(any::<u8>(), 0..3_000),
        ) {
            let mut ab = a.clone();
            ab.extend_from_slice(&b);
            prop_assert_eq!(crc32c(crc32c(seed, &a), &b), crc32c(seed, &ab));
            prop_assert_eq!(crc32c(seed, &ab), crate_crc32c(seed, &ab));
        }
    }
}

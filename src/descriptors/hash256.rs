//! A 256-bit hash with ThreatExchange-compatible hex.
//!
//! Bit `k` (PDQ: DCT row `k / 16`, column `k % 16`) lives in `words[k / 64]`
//! at bit `k % 64`. ThreatExchange prints sixteen 16-bit words, most
//! significant (bits 240..255) first; `to_hex`/`from_hex` follow that order.

use bytemuck::{Pod, Zeroable};

/// A 256-bit perceptual hash (PDQ), compared by Hamming distance.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct Hash256 {
    /// Bit `k` is bit `k % 64` of `words[k / 64]`.
    pub words: [u64; 4],
}

impl Hash256 {
    /// Whether bit `k` is set.
    pub fn bit(&self, k: usize) -> bool {
        (self.words[k / 64] >> (k % 64)) & 1 == 1
    }

    /// Sets bit `k`.
    pub fn set_bit(&mut self, k: usize) {
        self.words[k / 64] |= 1 << (k % 64);
    }

    /// Number of differing bits (0–256). Inlined, so it counts with POPCNT
    /// inside callers compiled for it.
    #[inline]
    pub fn hamming(&self, other: &Hash256) -> u32 {
        (0..4)
            .map(|i| (self.words[i] ^ other.words[i]).count_ones())
            .sum()
    }

    /// 64 lowercase hex digits, ThreatExchange order (bits 255..0).
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for w in self.words.iter().rev() {
            s.push_str(&format!("{w:016x}"));
        }
        s
    }

    /// Parses 64 hex digits in ThreatExchange order (surrounding whitespace
    /// allowed); None if malformed.
    pub fn from_hex(s: &str) -> Option<Hash256> {
        let s = s.trim();
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut h = Hash256::default();
        for (i, chunk) in s.as_bytes().chunks(16).enumerate() {
            let w = u64::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
            h.words[3 - i] = w;
        }
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_bit_order() {
        let mut h = Hash256::default();
        h.set_bit(0);
        h.set_bit(255);
        let hex = h.to_hex();
        assert!(hex.starts_with('8') && hex.ends_with('1'), "{hex}");
        assert_eq!(Hash256::from_hex(&hex), Some(h));
        assert_eq!(Hash256::from_hex("zz"), None);
    }
}

//! PDQ stages 4–6: the 16×16 DCT of the 64×64 image, the median threshold
//! that makes the hash, and the 8 dihedral variants taken from the one DCT
//! (GPU copy: `dct_rows`, `dct_cols`, `threshold` in shaders/pdq_dct.wgsl).

use std::sync::OnceLock;

use crate::descriptors::Hash256;

/// The 16×64 DCT-II matrix, row-major: `D[i][j]` = sqrt(2/64) · cos(π/(2·64) ·
/// (i+1) · (2j+1)). Rows start at frequency 1 because PDQ drops the DC term.
/// As in the reference, the scale is rounded to f32 first, the product is
/// taken in f64, and the result rounded to f32.
pub fn dct_matrix_16x64() -> &'static [f32; 1024] {
    static M: OnceLock<[f32; 1024]> = OnceLock::new();
    M.get_or_init(|| {
        let scale = (2.0f64 / 64.0).sqrt() as f32;
        let mut m = [0.0f32; 1024];
        for i in 0..16 {
            for j in 0..64 {
                let angle =
                    (std::f64::consts::PI / 2.0 / 64.0) * (i + 1) as f64 * (2 * j + 1) as f64;
                m[i * 64 + j] = (scale as f64 * angle.cos()) as f32;
            }
        }
        m
    })
}

/// B = D · A · Dᵀ (16×16, row-major; row = vertical frequency, column =
/// horizontal frequency), f32. Order as the reference: first T = D·A with
/// `T[i][j] = Σ_k D[i][k]·A[k][j]` summed k = 0..63 from 0.0, then
/// `B[i][j] = Σ_k T[i][k]·D[j][k]`, k = 0..63 from 0.0.
pub fn dct16_from_64(buf: &[f32; 4096]) -> [f32; 256] {
    let d = dct_matrix_16x64();
    let mut t = [0.0f32; 1024];
    for i in 0..16 {
        let drow = &d[i * 64..(i + 1) * 64];
        let trow = &mut t[i * 64..(i + 1) * 64];
        // Accumulate whole rows of A so each t[i][j] still sums k = 0..63 in order.
        for (k, &dk) in drow.iter().enumerate() {
            let arow = &buf[k * 64..(k + 1) * 64];
            trow.iter_mut().zip(arow).for_each(|(s, &a)| *s += dk * a);
        }
    }
    let mut out = [0.0f32; 256];
    for i in 0..16 {
        let trow = &t[i * 64..(i + 1) * 64];
        for j in 0..16 {
            let drow = &d[j * 64..(j + 1) * 64];
            let mut s = 0.0f32;
            for k in 0..64 {
                s += trow[k] * drow[k];
            }
            out[i * 16 + j] = s;
        }
    }
    out
}

/// The 128th smallest of the 256 values (index 127 after sorting). The
/// reference uses Torben's selection, which for an even count returns this
/// lower median; sorting gives the same element.
pub fn median_dct16(dct: &[f32; 256]) -> f32 {
    let mut v = *dct;
    let (_, m, _) = v.select_nth_unstable_by(127, |a, b| a.total_cmp(b));
    *m
}

/// Bit `row*16 + col` is set iff that coefficient is strictly greater than the
/// median.
pub fn hash_from_dct16(dct: &[f32; 256]) -> Hash256 {
    let med = median_dct16(dct);
    let mut h = Hash256::default();
    for (k, &v) in dct.iter().enumerate() {
        if v > med {
            h.set_bit(k);
        }
    }
    h
}

/// The 16×16 DCT of each dihedral transform of the image, in
/// [`super::DIHEDRAL_NAMES`] order, from the one DCT of the original. A mirror along
/// an axis multiplies frequency `f` (here index `f-1`, DC is skipped) by
/// (-1)^f, so even indices change sign; a transpose swaps row and column.
/// Sign changes are exact, so these equal the reference's
/// `dct16OriginalTo*` tables bit for bit.
pub fn dihedral_dcts(dct: &[f32; 256]) -> [[f32; 256]; 8] {
    let a = |i: usize, j: usize| dct[i * 16 + j];
    let neg_even = |x: f32, idx: usize| if idx & 1 == 0 { -x } else { x };
    let neg_odd_sum = |x: f32, i: usize, j: usize| if (i + j) & 1 == 1 { -x } else { x };
    let mut out = [[0.0f32; 256]; 8];
    for i in 0..16 {
        for j in 0..16 {
            let v = a(i, j);
            out[0][i * 16 + j] = v;
            out[1][j * 16 + i] = neg_even(v, j); // rot90 (CCW): transpose, sign by column
            out[2][i * 16 + j] = neg_odd_sum(v, i, j); // rot180
            out[3][j * 16 + i] = neg_even(v, i); // rot270 (CW): transpose, sign by row
            out[4][i * 16 + j] = neg_even(v, i); // flipX: top/bottom mirror
            out[5][i * 16 + j] = neg_even(v, j); // flipY: left/right mirror
            out[6][j * 16 + i] = v; // flipPlus1: transpose
            out[7][j * 16 + i] = neg_odd_sum(v, i, j); // flipMinus1: anti-transpose
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_lower_middle() {
        let v: [f32; 256] = std::array::from_fn(|i| ((i * 97) % 256) as f32);
        assert_eq!(median_dct16(&v), 127.0);
        assert_eq!(
            hash_from_dct16(&v)
                .words
                .iter()
                .map(|w| w.count_ones())
                .sum::<u32>(),
            128
        );
    }
}

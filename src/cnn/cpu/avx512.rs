//! The f32 matrix product of ungrouped convolutions on AVX-512 machines,
//! with the layer's epilogue (bias, activation, and a residual add when one
//! follows) applied as each tile is stored.
//!
//! Why not the `gemm` crate here (it runs everywhere else): it packs both
//! operands into panels on every call and writes its output before a
//! separate bias and activation pass; a convolution's weights already lie
//! as the rows a tile reads (OIHW), and an im2col band as its columns, so
//! this kernel reads both in place. A tile is 8 output channels × 48 pixels:
//! each step loads three vectors of 16 pixels and broadcasts each channel's
//! weight into 24 fused multiply-adds, 24 accumulators in registers, the
//! shape the int8 kernel (`int8.rs`) runs at one instruction a cycle.
//! Measured against the crate in benches/README.md ("Own f32 tiles").

use super::gemm::Uninit;
use crate::cnn::model::Act;

/// Output channels of one tile.
const MR: usize = 8;
/// 16-lane vectors of pixels in one full tile.
const NV: usize = 3;
/// Pixels of one full tile.
const NR: usize = 16 * NV;

/// Whether this CPU runs these tiles (AVX-512 F).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// One product's operands and epilogue: `c[o][j] = act(Σ_p a[o][p] ·
/// b[p][j] + bias[o])`, then `add(c + res[o][j])` when `res` is given, for
/// `o < bias.len()`, `j < n`; `a` is `m × k` dense, `b` `k × n` at row
/// stride `ldb`, `c` (and `res`) at row stride `ldc`.
pub(super) struct Product<'a> {
    /// The weights, `m × k` row-major (OIHW as it lies).
    pub a: &'a [f32],
    /// Products summed per output (input channels × taps).
    pub k: usize,
    /// The input, `k` rows of at least `n` columns.
    pub b: &'a [f32],
    /// Output columns (pixels).
    pub n: usize,
    /// Row stride of `b`.
    pub ldb: usize,
    /// One bias per output row; its length is `m`.
    pub bias: &'a [f32],
    /// The activation after the bias.
    pub act: Act,
    /// A residual map and the activation after adding it.
    pub res: Option<(&'a [f32], Act)>,
    /// Row stride of the output and of `res`.
    pub ldc: usize,
}

impl Product<'_> {
    /// Runs the product into `c`, every one of its `m × n` elements written.
    ///
    /// # Panics
    /// If an operand is shorter than the product reads or writes, or the
    /// CPU lacks AVX-512 F.
    pub fn run(&self, c: &mut [Uninit]) {
        assert!(available(), "AVX-512 tiles on a CPU without AVX-512 F");
        let (m, k, n, ldb, ldc) = (self.bias.len(), self.k, self.n, self.ldb, self.ldc);
        assert!(self.a.len() >= m * k, "weights shorter than cout × k");
        assert!(
            k == 0 || n == 0 || self.b.len() >= (k - 1) * ldb + n,
            "input shorter than the product reads"
        );
        assert!(
            m == 0 || n == 0 || c.len() >= (m - 1) * ldc + n,
            "output shorter than the product writes"
        );
        assert!(
            self.res
                .is_none_or(|(r, _)| m == 0 || n == 0 || r.len() >= (m - 1) * ldc + n),
            "residual shorter than the product reads"
        );
        // Columns run in bands whose input fits in a quarter of L2; in a
        // band, each 8-channel slice of the weights (read in place) stays
        // in L1/L2 across the band's tiles. (Copying each band into
        // contiguous 48-column panels, as BLIS does, was slower on all but
        // one of ResNet-50's shapes.)
        let band = ((256 << 10) / (4 * k).max(1)).next_multiple_of(NR).max(NR);
        // A last 1–4 columns past a multiple of 16 (a 7 × 7 map's 49th,
        // 14 × 14's last 4) would cost a whole 16-lane tile for one to four
        // lanes of work: they run as dot products along k instead, copied
        // out once and done for each 8-channel slice right after its tiles,
        // while its weights are still in cache.
        let few = match n % 16 {
            r @ 1..=4 => r,
            _ => 0,
        };
        let n = n - few;
        thread_local! {
            static COLUMNS: std::cell::RefCell<Vec<f32>> = Default::default();
        }
        let mut bt = COLUMNS.with_borrow_mut(std::mem::take);
        let kp = k.next_multiple_of(16);
        if few > 0 {
            bt.clear();
            bt.resize(few * kp, 0.0);
            for p in 0..k {
                for r in 0..few {
                    bt[r * kp + p] = self.b[p * ldb + n + r];
                }
            }
        }
        // (One empty band when every column is one of the few.)
        for j0 in (0..n.max(1)).step_by(band) {
            let j1 = (j0 + band).min(n);
            for o0 in (0..m).step_by(MR) {
                let rows = MR.min(m - o0);
                for j in (j0..j1).step_by(NR) {
                    let cols = (j1 - j).min(NR);
                    let b = &self.b[j..];
                    // SAFETY: AVX-512 F is present (asserted); the asserts
                    // above bound every read of a (rows o0..o0 + rows, k
                    // each), b (k rows of columns j..j + cols at ldb) and
                    // res, and every write of c (rows × cols at ldc).
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        match cols.div_ceil(16) {
                            1 => self.tile::<1>(o0, rows, b, j, cols, c),
                            2 => self.tile::<2>(o0, rows, b, j, cols, c),
                            _ => self.tile::<NV>(o0, rows, b, j, cols, c),
                        }
                    }
                }
                if few == 0 || j1 < n {
                    continue;
                }
                // SAFETY: as for the tiles; `bt` holds the columns n..n +
                // few, kp values each.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    for q0 in (o0..o0 + rows).step_by(4) {
                        let q = (q0, (o0 + rows - q0).min(4));
                        match few {
                            1 => self.narrow::<1>(q, &bt, n, c),
                            2 => self.narrow::<2>(q, &bt, n, c),
                            3 => self.narrow::<3>(q, &bt, n, c),
                            _ => self.narrow::<4>(q, &bt, n, c),
                        }
                    }
                }
            }
        }
        COLUMNS.set(bt);
    }

    /// Columns `j..j + R` of output channels `o0..o0 + rows` (`rows ≤
    /// 4`) as dot products along `k`: `bt` holds the columns contiguous,
    /// zero-padded to a multiple of 16; rows × R 16-lane partial sums run
    /// in registers and are summed across lanes at the end.
    ///
    /// # Safety
    /// The CPU has AVX-512 F; the operands hold what [`Product::run`]
    /// asserts, `bt` R columns of k rounded up to 16, and `j + R ≤ n`.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::needless_range_loop)] // (index loops unroll to registers)
    #[target_feature(enable = "avx512f")]
    unsafe fn narrow<const R: usize>(
        &self,
        (o0, rows): (usize, usize),
        bt: &[f32],
        j: usize,
        c: &mut [Uninit],
    ) {
        use std::arch::x86_64::*;
        let k = self.k;
        let kp = k.next_multiple_of(16);
        assert!(bt.len() >= R * kp && (1..=4).contains(&rows));
        let tail: __mmask16 = match k % 16 {
            0 => 0xffff,
            t => (1u16 << t) - 1,
        };
        let zero = _mm512_setzero_ps();
        // Rows past `rows` read the last real row again (never stored).
        let ap: [*const f32; 4] =
            std::array::from_fn(|r| self.a.as_ptr().add((o0 + r.min(rows - 1)) * k));
        let mut acc = [[zero; R]; 4];
        for p in (0..kp).step_by(16) {
            let mask = if p + 16 > k { tail } else { 0xffff };
            let bv: [__m512; R] =
                std::array::from_fn(|r| _mm512_loadu_ps(bt.as_ptr().add(r * kp + p)));
            for r in 0..4 {
                let av = _mm512_maskz_loadu_ps(mask, ap[r].add(p));
                for q in 0..R {
                    acc[r][q] = _mm512_fmadd_ps(av, bv[q], acc[r][q]);
                }
            }
        }
        // Lane sums leave the registers in one unrolled pass (the stores
        // below loop over a run-time count of rows).
        let mut sums = [[0f32; R]; 4];
        for r in 0..4 {
            for q in 0..R {
                sums[r][q] = _mm512_reduce_add_ps(acc[r][q]);
            }
        }
        for r in 0..rows {
            let o = o0 + r;
            for q in 0..R {
                let at = o * self.ldc + j + q;
                let mut y = self.act.apply(sums[r][q] + self.bias[o]);
                if let Some((res, add)) = self.res {
                    y = add.apply(y + res[at]);
                }
                c[at].write(y);
            }
        }
    }

    /// The tile of output channels `o0..o0 + rows` and columns `j..j +
    /// cols` (`cols ≤ 16·V`): 8 × V accumulators in registers across all
    /// `k` steps, then the epilogue and masked stores.
    ///
    /// # Safety
    /// The CPU has AVX-512 F; the operands hold what [`Product::run`]
    /// asserts, and `rows ≤ 8`, `cols ≤ 16·V`.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::needless_range_loop)] // (index loops unroll to registers)
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const V: usize>(
        &self,
        o0: usize,
        rows: usize,
        b: &[f32],
        j: usize,
        cols: usize,
        c: &mut [Uninit],
    ) {
        use std::arch::x86_64::*;
        let lanes = |n: usize| -> __mmask16 { (((1u32 << n.min(16)) - 1) & 0xffff) as u16 };
        let masks: [__mmask16; V] = std::array::from_fn(|v| lanes(cols.saturating_sub(16 * v)));
        // Rows past `rows` read the last real row again (their sums are
        // never stored): no branch in the loop, no out-of-bounds read.
        let ap: [*const f32; MR] =
            std::array::from_fn(|r| self.a.as_ptr().add((o0 + r.min(rows - 1)) * self.k));
        let bp = b.as_ptr();
        let mut acc = [[_mm512_setzero_ps(); V]; MR];
        for p in 0..self.k {
            // SAFETY (all reads): masked loads touch only the first `cols`
            // columns of row p; ap[r] points at a row of k weights.
            let row = bp.add(p * self.ldb);
            let bv: [__m512; V] =
                std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], row.add(16 * v)));
            for r in 0..MR {
                let w = _mm512_set1_ps(*ap[r].add(p));
                for v in 0..V {
                    acc[r][v] = _mm512_fmadd_ps(w, bv[v], acc[r][v]);
                }
            }
        }
        // The sums leave the registers in one unrolled pass, so that the
        // epilogue's loop over `rows` never indexes the accumulators
        // (which would make them a stack array).
        let mut sums = [[_mm512_setzero_ps(); V]; MR];
        for r in 0..MR {
            for v in 0..V {
                sums[r][v] = acc[r][v];
            }
        }
        let zero = _mm512_setzero_ps();
        let six = _mm512_set1_ps(6.0);
        let act = |v, a: Act| match a {
            Act::None => v,
            Act::Relu => _mm512_max_ps(v, zero),
            Act::Relu6 => _mm512_min_ps(_mm512_max_ps(v, zero), six),
        };
        for r in 0..MR {
            if r >= rows {
                continue;
            }
            let o = o0 + r;
            let bias = _mm512_set1_ps(self.bias[o]);
            let at = o * self.ldc + j;
            for v in 0..V {
                let mut y = act(_mm512_add_ps(sums[r][v], bias), self.act);
                if let Some((res, add)) = self.res {
                    let x = _mm512_maskz_loadu_ps(masks[v], res.as_ptr().add(at + 16 * v));
                    y = act(_mm512_add_ps(y, x), add);
                }
                _mm512_mask_storeu_ps(c.as_mut_ptr().add(at + 16 * v).cast(), masks[v], y);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::rnd;
    use super::*;

    #[test]
    fn tiles_match_the_textbook_product() {
        if !available() {
            // Nothing to run: the engine must not pick these tiles either.
            assert!(!super::super::gemm::tiles_in_use());
            return;
        }
        // (m, k, n, ldb ≥ n, ldc ≥ n): partial tiles in both directions,
        // the 1-, 2- and 3-vector tiles, strided operands, k = 0 and 1, and
        // k large enough for several column bands.
        let cases = [
            (8, 16, 48, 48, 48),
            (3, 5, 1, 1, 1),
            (13, 27, 49, 60, 55),
            (17, 1, 100, 100, 130),
            (9, 0, 20, 20, 20),
            (64, 2000, 200, 200, 200),
            (8, 64, 33, 33, 40),
            (5, 40, 18, 18, 18),
            (11, 17, 35, 40, 35),
        ];
        let acts = [Act::None, Act::Relu, Act::Relu6];
        for (i, &(m, k, n, ldb, ldc)) in cases.iter().enumerate() {
            let a = rnd(m * k, i as u32 + 1);
            let b = rnd(k.max(1) * ldb, i as u32 + 20);
            let bias = rnd(m, i as u32 + 40);
            let res = rnd(m * ldc, i as u32 + 60);
            for with_res in [false, true] {
                let act = acts[i % 3];
                let add = acts[(i + 1) % 3];
                let p = Product {
                    a: &a,
                    k,
                    b: &b,
                    n,
                    ldb,
                    bias: &bias,
                    act,
                    res: with_res.then_some((&res[..], add)),
                    ldc,
                };
                // Columns past n in each row must stay untouched.
                let mut c = vec![std::mem::MaybeUninit::new(f32::NAN); m * ldc];
                p.run(&mut c);
                for o in 0..m {
                    for j in 0..ldc {
                        // SAFETY: every element was initialised (NaN or written).
                        let got = unsafe { c[o * ldc + j].assume_init() };
                        if j >= n {
                            assert!(got.is_nan(), "case {i}: wrote past column n at {o},{j}");
                            continue;
                        }
                        let dot: f64 = (0..k)
                            .map(|p| a[o * k + p] as f64 * b[p * ldb + j] as f64)
                            .sum();
                        let mut want = act.apply((dot + bias[o] as f64) as f32);
                        if with_res {
                            want = add.apply(want + res[o * ldc + j]);
                        }
                        assert!(
                            (got - want).abs() <= 1e-4 * (1.0 + dot.abs() as f32),
                            "case {i} res {with_res} at {o},{j}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}

//! Batched PDQ + pHash on the GPU. A batch is split into parts that fit the
//! adapter's storage-binding limit; each part is one submission. `submit`
//! returns at once (the GPU works while the caller decodes the next batch);
//! `finish` waits, reads back and does the CPU tail (quality sum, pHash's
//! f64 DCT).

use std::collections::HashMap;

use super::pipelines::{grid, storage, storage_init, uniform};
use super::{GpuEngine, GpuError};
use crate::descriptors::{self, pdq, phash, Descriptors, Hash256, QueryDescriptors};

/// Which descriptor semantics a submitted batch follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingKind {
    /// `describe_query` semantics: always filter (the dihedral path).
    Query,
    /// `describe` semantics: a 64×64 input is hashed unfiltered.
    Index,
}

/// A submitted batch: results are fetched with `GpuEngine::finish_*`.
pub struct Pending {
    n: usize,
    parts: Vec<Part>,
    /// Images the GPU path does not take (a side < 5 px, or too large for
    /// one binding): computed on the CPU at `finish`, (index, result).
    cpu: Vec<(usize, QueryDescriptors, Descriptors)>,
}

struct Part {
    images: Vec<usize>,
    readback: wgpu::Buffer,
    submission: wgpu::SubmissionIndex,
    receiver: std::sync::mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>,
}

/// Per image: hash words (8 variants × 8), quality partials (64), pHash 32×32.
const WORDS_PER_IMAGE: usize = 64 + 64 + 1024;

impl GpuEngine {
    /// Largest single storage binding we create (bytes).
    pub(crate) fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
            .min(1 << 30)
    }

    /// Uploads `images` and queues PDQ and pHash for them; returns at once.
    /// Fetch the results with the matching `finish_*`.
    pub fn submit(&self, images: &[image::RgbImage], kind: PendingKind) -> Pending {
        let max_px = self.max_binding_bytes() / 4;
        // Pixel budget per part: bounded memory and keeps parts in flight short.
        let budget = max_px.min(1 << 24);
        let mut cpu = Vec::new();
        let mut parts = Vec::new();
        let mut cur: Vec<usize> = Vec::new();
        let mut cur_px = 0u64;
        for (i, img) in images.iter().enumerate() {
            let (w, h) = (img.width() as u64, img.height() as u64);
            let px = w * h;
            let box_ok = w.div_ceil(128) < 4096 && h.div_ceil(128) < 4096;
            if (w as usize) < pdq::MIN_HASHABLE_DIM
                || (h as usize) < pdq::MIN_HASHABLE_DIM
                || px > max_px
                || !box_ok
            {
                cpu.push((
                    i,
                    descriptors::describe_query(img),
                    descriptors::describe(img),
                ));
                continue;
            }
            if cur_px + px > budget && !cur.is_empty() {
                parts.push(self.submit_part(images, std::mem::take(&mut cur), kind));
                cur_px = 0;
            }
            cur.push(i);
            cur_px += px;
        }
        if !cur.is_empty() {
            parts.push(self.submit_part(images, cur, kind));
        }
        Pending {
            n: images.len(),
            parts,
            cpu,
        }
    }

    fn submit_part(&self, all: &[image::RgbImage], idx: Vec<usize>, kind: PendingKind) -> Part {
        let dev = &self.device;
        let n = idx.len();
        let mut meta: Vec<u32> = Vec::with_capacity(n * 8);
        let mut rgb: Vec<u8> = Vec::new();
        let (mut row_pref, mut col_pref) = (vec![0u32], vec![0u32]);
        let mut pix = 0u32;
        let mut taps: Vec<i32> = Vec::new();
        let mut taps_at: HashMap<u32, u32> = HashMap::new();
        for &i in &idx {
            let img = &all[i];
            let (w, h) = (img.width(), img.height());
            let mut tap = |size: u32| -> u32 {
                if size == 32 {
                    return 0; // that pass is skipped
                }
                *taps_at.entry(size).or_insert_with(|| {
                    let at = taps.len() as u32;
                    let (start, weights) = phash::lanczos_taps_32(size as usize);
                    let maxlen = weights.iter().map(|w| w.len()).max().unwrap_or(0);
                    taps.push(maxlen as i32);
                    taps.extend(start.iter().map(|&s| s as i32));
                    taps.extend(weights.iter().map(|w| w.len() as i32));
                    for w in &weights {
                        taps.extend(w);
                        taps.extend(std::iter::repeat_n(0, maxlen - w.len()));
                    }
                    at
                })
            };
            let (tx, ty) = (tap(w), tap(h));
            let pass = (kind == PendingKind::Index && w == 64 && h == 64) as u32;
            meta.extend([rgb.len() as u32, w, h, pix, tx, ty, pass, 0]);
            rgb.extend_from_slice(img.as_raw());
            rgb.resize(rgb.len().next_multiple_of(4), 0);
            pix += w * h;
            row_pref.push(row_pref.last().unwrap() + h);
            col_pref.push(col_pref.last().unwrap() + w);
        }
        let rows = *row_pref.last().unwrap();
        let cols = *col_pref.last().unwrap();
        let mut pref = row_pref;
        pref.extend(col_pref);

        let params = uniform(dev, [n as u32, 0, 0, 0]);
        let meta_b = storage_init(dev, bytemuck::cast_slice(&meta));
        let pref_b = storage_init(dev, bytemuck::cast_slice(&pref));
        let rgb_b = storage_init(dev, &rgb);
        let taps_b = storage_init(dev, bytemuck::cast_slice(&taps));
        let buf_a = storage(dev, pix as u64 * 4, false);
        let buf_b = storage(dev, pix as u64 * 4, false);
        let buf_c = storage(dev, rows as u64 * 64 * 4, false);
        let out64 = storage(dev, n as u64 * 4096 * 4, false);
        let tmat = storage(dev, n as u64 * 1024 * 4, false);
        let dct = storage(dev, n as u64 * 256 * 4, false);
        let qpart = storage(dev, n as u64 * 64 * 4, true);
        let bits = storage(dev, n as u64 * 64 * 4, true);
        let tmp = storage(dev, rows as u64 * 32 * 4, false);
        let out32 = storage(dev, n as u64 * 1024 * 4, true);
        let readback = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (n * WORDS_PER_IMAGE * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        let p = &self.pipes;
        let g_down = p.downsample.bind(
            dev,
            &[
                &params, &meta_b, &pref_b, &rgb_b, &buf_a, &buf_b, &buf_c, &out64,
            ],
        );
        let g_dct = p.dct.bind(
            dev,
            &[&params, &out64, &p.dct_matrix, &tmat, &dct, &qpart, &bits],
        );
        let g_res = p.resize.bind(
            dev,
            &[&params, &meta_b, &pref_b, &rgb_b, &taps_b, &tmp, &out32],
        );
        let max_dim = self.limits.max_compute_workgroups_per_dimension;
        let n32 = n as u32;
        let steps: [(&super::pipelines::Family, &wgpu::BindGroup, &str, u32); 10] = [
            (&p.downsample, &g_down, "rows1", rows),
            (&p.downsample, &g_down, "cols1", cols),
            (&p.downsample, &g_down, "rows2", rows),
            (&p.downsample, &g_down, "cols2", n32 * 64),
            (&p.dct, &g_dct, "quality", n32 * 64),
            (&p.dct, &g_dct, "dct_rows", n32 * 1024),
            (&p.dct, &g_dct, "dct_cols", n32 * 256),
            (&p.dct, &g_dct, "threshold", n32 * 8),
            (&p.resize, &g_res, "resize_rows", rows),
            (&p.resize, &g_res, "resize_cols", n32 * 32),
        ];
        let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("describe"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("describe"),
                timestamp_writes: None,
            });
            for (fam, group, entry, count) in steps {
                pass.set_pipeline(fam.pipe(entry));
                pass.set_bind_group(0, group, &[]);
                let (x, y) = grid(count, max_dim);
                pass.dispatch_workgroups(x, y, 1);
            }
        }
        let nb = n as u64 * 64 * 4;
        enc.copy_buffer_to_buffer(&bits, 0, &readback, 0, nb);
        enc.copy_buffer_to_buffer(&qpart, 0, &readback, nb, nb);
        enc.copy_buffer_to_buffer(&out32, 0, &readback, 2 * nb, n as u64 * 4096);
        let submission = self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        readback.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        Part {
            images: idx,
            readback,
            submission,
            receiver: rx,
        }
    }

    /// Waits for a batch; results in input order (`describe_batch` semantics).
    pub fn finish_query(&self, p: Pending) -> Result<Vec<QueryDescriptors>, GpuError> {
        Ok(self.finish(p)?.into_iter().map(|(q, _)| q).collect())
    }

    /// Waits for a batch; results in input order (`describe` semantics).
    pub fn finish_index(&self, p: Pending) -> Result<Vec<Descriptors>, GpuError> {
        Ok(self.finish(p)?.into_iter().map(|(_, d)| d).collect())
    }

    fn finish(&self, p: Pending) -> Result<Vec<(QueryDescriptors, Descriptors)>, GpuError> {
        let mut out: Vec<Option<(QueryDescriptors, Descriptors)>> = vec![None; p.n];
        for (i, q, d) in p.cpu {
            out[i] = Some((q, d));
        }
        for part in p.parts {
            // Wait for this part only: a later batch may already be queued behind it.
            let wait = wgpu::PollType::Wait {
                submission_index: Some(part.submission.clone()),
                timeout: None,
            };
            self.device
                .poll(wait)
                .map_err(|e| GpuError(format!("waiting for the GPU failed: {e}")))?;
            part.receiver
                .recv()
                .map_err(|_| GpuError("the GPU readback was never answered".into()))?
                .map_err(|e| GpuError(format!("GPU readback failed: {e}")))?;
            let n = part.images.len();
            {
                let view = part
                    .readback
                    .get_mapped_range(..)
                    .map_err(|e| GpuError(format!("GPU readback not mapped: {e}")))?;
                let words: &[u32] = bytemuck::cast_slice(&view);
                let (bits, rest) = words.split_at(n * 64);
                let (qpart, px) = rest.split_at(n * 64);
                for (j, &i) in part.images.iter().enumerate() {
                    let pdq: [Hash256; 8] = std::array::from_fn(|v| {
                        let w = &bits[j * 64 + v * 8..j * 64 + v * 8 + 8];
                        Hash256 {
                            words: std::array::from_fn(|k| {
                                w[2 * k] as u64 | (w[2 * k + 1] as u64) << 32
                            }),
                        }
                    });
                    let qsum: i32 = qpart[j * 64..j * 64 + 64].iter().map(|&x| x as i32).sum();
                    let quality = (qsum / 90).min(100) as u8;
                    let mut px32 = [0u8; 1024];
                    px32.iter_mut()
                        .zip(&px[j * 1024..j * 1024 + 1024])
                        .for_each(|(d, &s)| *d = s as u8);
                    let ph = phash::phash_bits(&phash::dct8_from_32(&px32));
                    out[i] = Some((
                        // Trimmed views are a second batch (see `GpuEngine::submit_views`).
                        QueryDescriptors {
                            pdq,
                            quality,
                            phash: ph,
                            pdq_trim: None,
                            keypoints: vec![],
                            embedding: None,
                            regions: vec![],
                        },
                        Descriptors {
                            pdq: pdq[0],
                            quality,
                            phash: ph,
                            pdq_trim: pdq[0],
                            keypoints: Default::default(),
                            embedding: Default::default(),
                        },
                    ));
                }
            }
            part.readback.unmap();
        }
        out.into_iter()
            .map(|o| o.ok_or_else(|| GpuError("an image of the batch was not described".into())))
            .collect()
    }
}

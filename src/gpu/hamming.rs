//! Host side of the Hamming top-k kernel (shaders/hamming.wgsl): db chunks
//! that fit one storage binding, query chunks, tile sizing, and the merge of
//! per-tile lists. The CPU scan it must equal is `search::hamming`
//! (`column_topk`); where this kernel declines (k > [`KMAX`], or the device
//! fails), the caller runs that scan instead.

use super::pipelines::{storage, storage_init, uniform, WORKGROUP_SIZE};
use super::GpuEngine;
use crate::descriptors::Hash256;

/// Per-(query, tile) list length in the kernel: the largest k it serves.
/// hamming.wgsl gets it as `KMAX` from a generated prelude (pipelines.rs).
pub const KMAX: usize = 32;
/// Queries per dispatch; bounds the result buffer.
const QUERY_CHUNK: usize = 4096;
/// Result entries per dispatch we aim for (× 8 bytes).
const RESULT_BUDGET: usize = 8 << 20;

pub(crate) fn topk(
    e: &GpuEngine,
    db: &[Hash256],
    live: &[bool],
    queries: &[[Hash256; 8]],
    k: usize,
) -> Option<Vec<Vec<(u32, u16, u8)>>> {
    assert_eq!(db.len(), live.len(), "live mask does not match db");
    if k > KMAX {
        // The kernel keeps KMAX per tile; larger k is the CPU scan's job.
        return None;
    }
    if k == 0 || queries.is_empty() || db.is_empty() {
        return Some(vec![Vec::new(); queries.len()]);
    }
    let mut out: Vec<Vec<(u32, u16, u8)>> = vec![Vec::new(); queries.len()];
    let max_rows = (e.max_binding_bytes() / 32) as usize & !31; // whole live words per chunk
    for (qc, qs) in queries.chunks(QUERY_CHUNK).enumerate() {
        let qwords: Vec<u32> = qs
            .iter()
            .flat_map(|q| {
                q.iter()
                    .flat_map(|h| bytemuck::cast_slice::<u64, u32>(&h.words).to_vec())
            })
            .collect();
        let qbuf = storage_init(&e.device, bytemuck::cast_slice(&qwords));
        let mut cand: Vec<Vec<(u32, u16, u8)>> = vec![Vec::new(); qs.len()];
        for (dc, chunk) in db.chunks(max_rows).enumerate() {
            let base = dc * max_rows;
            scan_chunk(
                e,
                chunk,
                &live[base..base + chunk.len()],
                &qbuf,
                qs.len(),
                k,
                base as u32,
                &mut cand,
            )?;
        }
        for (j, mut c) in cand.into_iter().enumerate() {
            c.sort_by_key(|&(row, d, _)| (d, row));
            c.truncate(k);
            out[qc * QUERY_CHUNK + j] = c;
        }
    }
    Some(out)
}

/// One db chunk's per-tile lists merged into `cand`; None if the device
/// failed (nothing usable was read back).
#[allow(clippy::too_many_arguments)]
fn scan_chunk(
    e: &GpuEngine,
    db: &[Hash256],
    live: &[bool],
    qbuf: &wgpu::Buffer,
    nq: usize,
    k: usize,
    base: u32,
    cand: &mut [Vec<(u32, u16, u8)>],
) -> Option<()> {
    let dev = &e.device;
    let n = db.len();
    // Enough tiles to fill the device, few enough that results stay small.
    let max_tiles = (RESULT_BUDGET / (nq * KMAX)).max(1);
    let tiles = n.div_ceil(256).clamp(1, max_tiles);
    let tile_len = n.div_ceil(tiles);
    let tiles = n.div_ceil(tile_len);
    let mut mask = vec![0u32; n.div_ceil(32)];
    for (i, _) in live.iter().enumerate().filter(|(_, &l)| l) {
        mask[i / 32] |= 1 << (i % 32);
    }
    let params = uniform(dev, [nq as u32, 0, n as u32, tile_len as u32]);
    let kbuf = uniform(dev, [k as u32, tiles as u32, 0, 0]);
    let db_b = storage_init(dev, bytemuck::cast_slice(db));
    let live_b = storage_init(dev, bytemuck::cast_slice(&mask));
    let result_bytes = (nq * tiles * KMAX * 8) as u64;
    let best = storage(dev, result_bytes, true);
    let readback = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some("hamming readback"),
        size: result_bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let fam = &e.pipes.hamming;
    let group = fam.bind(dev, &[&params, &db_b, &live_b, qbuf, &best, &kbuf]);
    let mut enc = dev.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(fam.pipe("topk"));
        pass.set_bind_group(0, &group, &[]);
        let ty = tiles.min(65535) as u32;
        let tz = tiles.div_ceil(65535) as u32;
        pass.dispatch_workgroups(nq.div_ceil(WORKGROUP_SIZE as usize) as u32, ty, tz);
    }
    enc.copy_buffer_to_buffer(&best, 0, &readback, 0, result_bytes);
    let sub = e.queue.submit([enc.finish()]);
    readback.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    e.device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(sub),
            timeout: None,
        })
        .ok()?;
    {
        let view = readback.get_mapped_range(..).ok()?;
        let words: &[u32] = bytemuck::cast_slice(&view);
        for (q, c) in cand.iter_mut().enumerate() {
            let list = &words[q * tiles * KMAX * 2..(q + 1) * tiles * KMAX * 2];
            for pair in list.chunks_exact(2) {
                if pair[1] != u32::MAX {
                    c.push((
                        base + pair[0],
                        (pair[1] >> 8) as u16,
                        (pair[1] & 0xff) as u8,
                    ));
                }
            }
            // Keep memory flat across db chunks.
            c.sort_by_key(|&(row, d, _)| (d, row));
            c.truncate(k);
        }
    }
    readback.unmap();
    Some(())
}

// PDQ stage 2 on the 64x64 buffers: quality partial sums, the 16x64 DCT
// matrix products (T = D*A, then B = T*D^T, each sum k = 0..63 from 0.0 as
// the CPU), and per dihedral variant the median and the threshold bits.
// Products go through keep() so no driver contracts them into FMAs.
// CPU reference: src/descriptors/pdq/quality.rs and src/descriptors/pdq/dct.rs;
// host code: src/gpu/describe.rs (the DCT matrix is uploaded by
// src/gpu/pipelines.rs).

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> buf64: array<f32>;
@group(0) @binding(2) var<storage, read> dmat: array<f32>;   // 16 x 64
@group(0) @binding(3) var<storage, read_write> tmat: array<f32>; // 16 x 64 per image
@group(0) @binding(4) var<storage, read_write> dct: array<f32>;  // 16 x 16 per image
@group(0) @binding(5) var<storage, read_write> qpart: array<i32>; // 64 per image
@group(0) @binding(6) var<storage, read_write> bits: array<u32>;  // 8 variants x 8 words per image

fn keep(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) ^ P.zero); }

fn qstep(u: f32, v: f32) -> i32 {
    return abs(i32(div_exact(keep((u - v) * 100.0), 255.0)));
}

// Row i's share of the gradient sum: vertical pairs (i, i+1) and horizontal pairs in row i.
@compute @workgroup_size(WORKGROUP_SIZE)
fn quality(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= P.n * 64u) { return; }
    let b = (id / 64u) * 4096u;
    let i = id % 64u;
    var s = 0;
    if (i < 63u) {
        for (var j = 0u; j < 64u; j++) { s += qstep(buf64[b + i * 64u + j], buf64[b + (i + 1u) * 64u + j]); }
    }
    for (var j = 0u; j < 63u; j++) { s += qstep(buf64[b + i * 64u + j], buf64[b + i * 64u + j + 1u]); }
    qpart[id] = s;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn dct_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= P.n * 1024u) { return; }
    let img = id / 1024u;
    let i = (id % 1024u) / 64u;
    let j = id % 64u;
    var s = 0.0;
    for (var k = 0u; k < 64u; k++) { s = s + keep(dmat[i * 64u + k] * buf64[img * 4096u + k * 64u + j]); }
    tmat[id] = s;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn dct_cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= P.n * 256u) { return; }
    let img = id / 256u;
    let i = (id % 256u) / 16u;
    let j = id % 16u;
    var s = 0.0;
    for (var k = 0u; k < 64u; k++) { s = s + keep(tmat[img * 1024u + i * 64u + k] * dmat[j * 64u + k]); }
    dct[id] = s;
}

// f32 -> u32 key whose unsigned order is the IEEE total order (as total_cmp).
fn order_key(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    return select(b ^ 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Variant v's value of coefficient (i, j) of the original, and its bit position
// (pdq/dct.rs dihedral_dcts: sign flips by index parity, transposes swap i and j).
fn variant(v: u32, i: u32, j: u32, x: f32) -> vec2<u32> {
    var neg = false;
    var pos = i * 16u + j;
    let tpos = j * 16u + i;
    switch v {
        case 1u: { neg = (j & 1u) == 0u; pos = tpos; }
        case 2u: { neg = ((i + j) & 1u) == 1u; }
        case 3u: { neg = (i & 1u) == 0u; pos = tpos; }
        case 4u: { neg = (i & 1u) == 0u; }
        case 5u: { neg = (j & 1u) == 0u; }
        case 6u: { pos = tpos; }
        case 7u: { neg = ((i + j) & 1u) == 1u; pos = tpos; }
        default: {}
    }
    return vec2<u32>(bitcast<u32>(select(x, -x, neg)), pos);
}

// One invocation per (image, variant): the lower median (rank 127) by a
// 32-step radix select on order keys, then bit = value > median.
@compute @workgroup_size(WORKGROUP_SIZE)
fn threshold(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= P.n * 8u) { return; }
    let img = id / 8u;
    let v = id % 8u;
    var keys: array<u32, 256>;
    for (var k = 0u; k < 256u; k++) {
        let vp = variant(v, k / 16u, k % 16u, dct[img * 256u + k]);
        keys[k] = order_key(bitcast<f32>(vp.x));
    }
    var rank = 127u;
    var prefix = 0u;
    var mask = 0u;
    for (var bit = 31; bit >= 0; bit--) {
        let b = 1u << u32(bit);
        var cnt = 0u;
        for (var k = 0u; k < 256u; k++) {
            if ((keys[k] & mask) == prefix && (keys[k] & b) == 0u) { cnt++; }
        }
        if (rank >= cnt) { rank -= cnt; prefix |= b; }
        mask |= b;
    }
    var words: array<u32, 8>;
    for (var k = 0u; k < 256u; k++) {
        let vp = variant(v, k / 16u, k % 16u, dct[img * 256u + k]);
        if (bitcast<f32>(vp.x) > key_value(prefix)) { words[vp.y / 32u] |= 1u << (vp.y % 32u); }
    }
    for (var w = 0u; w < 8u; w++) { bits[id * 8u + w] = words[w]; }
}

fn key_value(k: u32) -> f32 {
    return bitcast<f32>(select(~k, k ^ 0x80000000u, (k & 0x80000000u) != 0u));
}

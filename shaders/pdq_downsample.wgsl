// PDQ stage 1: Rec.601 luma + Jarosz downsample (2 x [row box, column box])
// + decimation to 64x64, for a batch of images of any sizes. One invocation
// per image row or column, each a sequential running sum in the CPU
// reference's exact add/subtract order. CPU reference:
// src/descriptors/pdq/luma.rs and src/descriptors/pdq/jarosz.rs; host code:
// src/gpu/describe.rs.
//
// info (8 u32 per image): rgb byte offset, width, height, pixel offset into
// buf_a/buf_b, taps x, taps y, flags (bit 0: 64x64 pass-through), pad.
// pref: row prefix sums [0..=n], then column prefix sums [0..=n].

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> info: array<u32>;
@group(0) @binding(2) var<storage, read> pref: array<u32>;
@group(0) @binding(3) var<storage, read> rgb: array<u32>;
@group(0) @binding(4) var<storage, read_write> buf_a: array<f32>;
@group(0) @binding(5) var<storage, read_write> buf_b: array<f32>;
@group(0) @binding(6) var<storage, read_write> buf_c: array<f32>; // height x 64 per image
@group(0) @binding(7) var<storage, read_write> out64: array<f32>;

fn rgb_byte(b: u32) -> u32 {
    return (rgb[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

// Exact integer numerator over 1000, one correctly rounded division (as the CPU).
fn luma(img: u32, x: u32, y: u32) -> f32 {
    let o = info[img * 8u] + (y * info[img * 8u + 1u] + x) * 3u;
    let num = 299u * rgb_byte(o) + 587u * rgb_byte(o + 1u) + 114u * rgb_byte(o + 2u);
    return div_exact(f32(num), 1000.0);
}

// Image owning job `id` of a prefix table starting at pref[base].
fn find_img(base: u32, id: u32) -> u32 {
    var lo = 0u;
    var hi = P.n;
    while (hi - lo > 1u) {
        let mid = (lo + hi) / 2u;
        if (pref[base + mid] <= id) { lo = mid; } else { hi = mid; }
    }
    return lo;
}

fn window(n: u32) -> u32 { return (n + 127u) / 128u; } // ceil(n / (2*64))
fn dec_idx(i: u32, n: u32) -> u32 { return ((2u * i + 1u) * n) / 128u; }

// mode 0: pass-1 rows (luma from rgb -> buf_a); 1: pass-1 columns (buf_a -> buf_b);
// 2: pass-2 rows (buf_b -> buf_c, decimated columns only);
// 3: pass-2 columns (buf_c -> out64, decimated rows only).
fn rd(mode: u32, img: u32, line: u32, i: u32) -> f32 {
    let w = info[img * 8u + 1u];
    let po = info[img * 8u + 3u];
    switch mode {
        case 0u: { return luma(img, i, line); }
        case 1u: { return buf_a[po + i * w + line]; }
        case 2u: { return buf_b[po + line * w + i]; }
        default: { return buf_c[pref_c(img) + i * 64u + line]; }
    }
}

// buf_c offset of an image: its row prefix times 64.
fn pref_c(img: u32) -> u32 { return pref[img] * 64u; }

// Writes output `o` of a line; returns the advanced decimation cursor.
fn wr(mode: u32, img: u32, line: u32, o: u32, v: f32, cur: u32, n: u32) -> u32 {
    let w = info[img * 8u + 1u];
    let po = info[img * 8u + 3u];
    var j = cur;
    switch mode {
        case 0u: { buf_a[po + line * w + o] = v; }
        case 1u: { buf_b[po + o * w + line] = v; }
        case 2u: {
            while (j < 64u && dec_idx(j, n) == o) { buf_c[pref_c(img) + line * 64u + j] = v; j++; }
        }
        default: {
            while (j < 64u && dec_idx(j, n) == o) { out64[img * 4096u + j * 64u + line] = v; j++; }
        }
    }
    return j;
}

// The reference's running-sum box filter over one line of n samples.
fn box_line(mode: u32, img: u32, line: u32, n: u32) {
    let w = window(n);
    let half = (w + 2u) / 2u;
    var sum = 0.0;
    var count = 0u;
    var li = 0u;
    var ri = 0u;
    var oi = 0u;
    var cur = 0u;
    for (var t = 0u; t < half - 1u; t++) {
        sum = sum + rd(mode, img, line, ri);
        count++; ri++;
    }
    for (var t = 0u; t < w - half + 1u; t++) {
        sum = sum + rd(mode, img, line, ri);
        count++;
        cur = wr(mode, img, line, oi, div_exact(sum, f32(count)), cur, n);
        ri++; oi++;
    }
    for (var t = 0u; t < n - w; t++) {
        sum = sum + rd(mode, img, line, ri);
        sum = sum - rd(mode, img, line, li);
        cur = wr(mode, img, line, oi, div_exact(sum, f32(count)), cur, n);
        li++; ri++; oi++;
    }
    for (var t = 0u; t < half - 1u; t++) {
        sum = sum - rd(mode, img, line, li);
        count--;
        cur = wr(mode, img, line, oi, div_exact(sum, f32(count)), cur, n);
        li++; oi++;
    }
}

fn passthrough(img: u32) -> bool { return (info[img * 8u + 6u] & 1u) != 0u; }

@compute @workgroup_size(WORKGROUP_SIZE)
fn rows1(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= pref[P.n]) { return; }
    let img = find_img(0u, id);
    if (passthrough(img)) { return; }
    box_line(0u, img, id - pref[img], info[img * 8u + 1u]);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn cols1(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let cb = P.n + 1u;
    if (id >= pref[cb + P.n]) { return; }
    let img = find_img(cb, id);
    if (passthrough(img)) { return; }
    box_line(1u, img, id - pref[cb + img], info[img * 8u + 2u]);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn rows2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= pref[P.n]) { return; }
    let img = find_img(0u, id);
    if (passthrough(img)) { return; }
    box_line(2u, img, id - pref[img], info[img * 8u + 1u]);
}

// One invocation per (image, output column j); the line is source column dec_idx(j, width).
@compute @workgroup_size(WORKGROUP_SIZE)
fn cols2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= P.n * 64u) { return; }
    let img = id / 64u;
    let j = id % 64u;
    if (passthrough(img)) {
        // The reference hashes a 64x64 input unfiltered (index path only).
        for (var i = 0u; i < 64u; i++) { out64[img * 4096u + i * 64u + j] = luma(img, j, i); }
        return;
    }
    box_line(3u, img, j, info[img * 8u + 2u]);
}

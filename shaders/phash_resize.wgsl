// pHash stage 1: Pillow's convert("L") and LANCZOS resize to 32x32 in 8-bit
// fixed point. CPU reference: src/descriptors/phash.rs; host code:
// src/gpu/describe.rs (the DCT and bits are then computed on the CPU).
// Integer arithmetic only, so it is exactly reproducible; the taps (f64 sin
// on the CPU) are uploaded.
// taps record per distinct source size: [maxlen, start[32], count[32], weights[32*maxlen]].

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> info: array<u32>;
@group(0) @binding(2) var<storage, read> pref: array<u32>;
@group(0) @binding(3) var<storage, read> rgb: array<u32>;
@group(0) @binding(4) var<storage, read> taps: array<i32>;
@group(0) @binding(5) var<storage, read_write> tmp: array<u32>;   // height x 32 per image
@group(0) @binding(6) var<storage, read_write> out32: array<u32>; // 32 x 32 per image

fn rgb_byte(b: u32) -> u32 {
    return (rgb[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

fn gray(img: u32, x: u32, y: u32) -> i32 {
    let o = info[img * 8u] + (y * info[img * 8u + 1u] + x) * 3u;
    return i32((rgb_byte(o) * 19595u + rgb_byte(o + 1u) * 38470u + rgb_byte(o + 2u) * 7471u + 0x8000u) >> 16u);
}

fn clip8(acc: i32) -> u32 { return u32(clamp(acc >> 22u, 0, 255)); }

fn find_img(id: u32) -> u32 {
    var lo = 0u;
    var hi = P.n;
    while (hi - lo > 1u) {
        let mid = (lo + hi) / 2u;
        if (pref[mid] <= id) { lo = mid; } else { hi = mid; }
    }
    return lo;
}

// Horizontal pass, one invocation per image row.
@compute @workgroup_size(WORKGROUP_SIZE)
fn resize_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= pref[P.n]) { return; }
    let img = find_img(id);
    let y = id - pref[img];
    let w = info[img * 8u + 1u];
    let t = info[img * 8u + 4u];
    for (var xx = 0u; xx < 32u; xx++) {
        var v: u32;
        if (w == 32u) {
            v = u32(gray(img, xx, y));
        } else {
            let maxlen = u32(taps[t]);
            let start = u32(taps[t + 1u + xx]);
            let cnt = u32(taps[t + 33u + xx]);
            var acc = 1 << 21u;
            for (var k = 0u; k < cnt; k++) { acc += gray(img, start + k, y) * taps[t + 65u + xx * maxlen + k]; }
            v = clip8(acc);
        }
        tmp[id * 32u + xx] = v;
    }
}

// Vertical pass, one invocation per (image, output column).
@compute @workgroup_size(WORKGROUP_SIZE)
fn resize_cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= P.n * 32u) { return; }
    let img = id / 32u;
    let x = id % 32u;
    let h = info[img * 8u + 2u];
    let t = info[img * 8u + 5u];
    let base = pref[img] * 32u;
    for (var yy = 0u; yy < 32u; yy++) {
        var v: u32;
        if (h == 32u) {
            v = tmp[base + yy * 32u + x];
        } else {
            let maxlen = u32(taps[t]);
            let start = u32(taps[t + 1u + yy]);
            let cnt = u32(taps[t + 33u + yy]);
            var acc = 1 << 21u;
            for (var k = 0u; k < cnt; k++) { acc += i32(tmp[base + (start + k) * 32u + x]) * taps[t + 65u + yy * maxlen + k]; }
            v = clip8(acc);
        }
        out32[img * 1024u + yy * 32u + x] = v;
    }
}

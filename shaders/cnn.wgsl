// CNN inference kernels (host side: src/gpu/cnn.rs). Feature maps are NCHW,
// a batch of N same-size images; weights OIHW with BatchNorm folded. Both are
// stored as `S`, which the host defines ahead of this file: `alias S = f32;`,
// or `enable f16; alias S = f16;` where the device has SHADER_F16 (half the
// memory traffic). Every value is widened with f32() on load and arithmetic
// and accumulation are f32 in both; results are narrowed with S() on store.
// Biases stay f32. Every entry point shares one binding layout:
//   src  = the layer input (add: a; gem: the feature map)
//   wt   = weights (add: b; unused by gem)
//   bias = per output channel (unused by add and gem)
//   dst  = the output, never aliased with an input.
// Activation codes (model.rs `Act::code`): 0 none, 1 relu, 2 relu6.
// max_pool reads src only; its padding is C.pad.x on every side.

struct CnnParams {
    n: u32,        // images in this dispatch
    cin: u32,
    h: u32,        // input height
    w: u32,        // input width
    cout: u32,
    oh: u32,
    ow: u32,
    k: u32,        // kernel side
    stride: u32,
    groups: u32,
    act: u32,
    total: u32,    // invocations with work (outputs, or add elements, or n*c for gem)
    pad: vec4<u32>, // top, left, bottom, right (bottom/right are implied by oh, ow)
    f: vec4<f32>,   // gem: x = p, y = clamp
};

@group(0) @binding(0) var<uniform> C: CnnParams;
@group(0) @binding(1) var<storage, read> src: array<S>;
@group(0) @binding(2) var<storage, read> wt: array<S>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<S>;

fn activate(x: f32, code: u32) -> f32 {
    if (code == 1u) {
        return max(x, 0.0);
    }
    if (code == 2u) {
        return clamp(x, 0.0, 6.0);
    }
    return x;
}

// Any grouped convolution (stem, depthwise, strided, k x k): one invocation
// per output element; only the taps that fall inside the image are visited,
// so zero padding costs nothing.
@compute @workgroup_size(64)
fn conv_direct(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= C.total) {
        return;
    }
    let ox = i % C.ow;
    let oy = (i / C.ow) % C.oh;
    let co = (i / (C.ow * C.oh)) % C.cout;
    let img = i / (C.ow * C.oh * C.cout);
    let cpi = C.cin / C.groups;
    let cpo = C.cout / C.groups;
    let ci0 = (co / cpo) * cpi;
    let k = C.k;
    let iy0 = i32(oy * C.stride) - i32(C.pad.x);
    let ix0 = i32(ox * C.stride) - i32(C.pad.y);
    let ky_lo = u32(max(-iy0, 0));
    let ky_hi = u32(clamp(i32(C.h) - iy0, 0, i32(k)));
    let kx_lo = u32(max(-ix0, 0));
    let kx_hi = u32(clamp(i32(C.w) - ix0, 0, i32(k)));
    var acc = 0.0;
    for (var c = 0u; c < cpi; c++) {
        let plane = (img * C.cin + ci0 + c) * C.h;
        let wb = (co * cpi + c) * k * k;
        for (var ky = ky_lo; ky < ky_hi; ky++) {
            let row = (plane + u32(iy0 + i32(ky))) * C.w;
            let wr = wb + ky * k;
            for (var kx = kx_lo; kx < kx_hi; kx++) {
                acc += f32(wt[wr + kx]) * f32(src[row + u32(ix0 + i32(kx))]);
            }
        }
    }
    dst[i] = S(activate(acc + bias[co], C.act));
}

// 1x1 stride-1 convolution as a tiled GEMM:
//   out[n][co][p] = bias[co] + sum_ci W[co][ci] * in[n][ci][p]
// with the batch folded into the columns (column q = n * h*w + p), so small
// late-stage maps (7x7) still fill whole tiles. A 16x16 workgroup computes a
// 64 (co) x 64 (column) tile, each invocation 4 x 4 outputs strided by 16
// (co = ty + 16i, q = tx + 16j), stepping through cin 16 at a time via
// shared-memory tiles. Workgroups are linear over (co tile, column tile),
// spilling into y past the per-dimension limit.
const PT: u32 = 64u;
const CT: u32 = 64u;
const KT: u32 = 16u;
var<workgroup> xs: array<f32, 1024>; // [KT][PT]
var<workgroup> ws: array<f32, 1024>; // [KT][CT]

@compute @workgroup_size(16, 16)
fn conv_pointwise(@builtin(local_invocation_id) lid: vec3<u32>,
                  @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let hw = C.h * C.w;
    let cols = C.n * hw;
    let qtiles = (cols + PT - 1u) / PT;
    let ctiles = (C.cout + CT - 1u) / CT;
    let g = wid.x + wid.y * nwg.x;
    if (g >= qtiles * ctiles) {
        return; // whole workgroup: uniform
    }
    let q0 = (g % qtiles) * PT;
    let co0 = (g / qtiles) * CT;
    let t = lid.y * 16u + lid.x;
    // This invocation always loads the same column of the input tile.
    let q = q0 + t % PT;
    let q_ok = q < cols;
    let qbase = (q / hw) * C.cin * hw + q % hw;
    let krow = t / PT; // + 4r
    // acc[i].j: channel co0 + ty + 16i, column q0 + tx + 16j.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < C.cin; k0 += KT) {
        for (var r = 0u; r < 4u; r++) {
            let e = t + 256u * r;
            // Input tile, columns fastest (coalesced rows of a channel plane).
            let ci = k0 + krow + 4u * r;
            var v = 0.0;
            if (ci < C.cin && q_ok) {
                v = f32(src[qbase + ci * hw]);
            }
            xs[e] = v;
            // Weight tile, ci fastest (coalesced along a weight row).
            let kk = e % KT;
            let cc = e / KT;
            let wci = k0 + kk;
            let co = co0 + cc;
            var u = 0.0;
            if (co < C.cout && wci < C.cin) {
                u = f32(wt[co * C.cin + wci]);
            }
            ws[kk * CT + cc] = u;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            let xr = kk * PT + lid.x;
            let b = vec4<f32>(xs[xr], xs[xr + 16u], xs[xr + 32u], xs[xr + 48u]);
            let wr = kk * CT + lid.y;
            acc0 += ws[wr] * b;
            acc1 += ws[wr + 16u] * b;
            acc2 += ws[wr + 32u] * b;
            acc3 += ws[wr + 48u] * b;
        }
        workgroupBarrier();
    }
    var obase: vec4<u32>; // per column j: n * cout * hw + p (u32 max: off the end)
    for (var j = 0u; j < 4u; j++) {
        let qj = q0 + lid.x + 16u * j;
        obase[j] = select(0xffffffffu, (qj / hw) * C.cout * hw + qj % hw, qj < cols);
    }
    store_pointwise(co0 + lid.y, hw, obase, acc0);
    store_pointwise(co0 + lid.y + 16u, hw, obase, acc1);
    store_pointwise(co0 + lid.y + 32u, hw, obase, acc2);
    store_pointwise(co0 + lid.y + 48u, hw, obase, acc3);
}

// Any ungrouped k x k convolution (ResNet's 7x7 stem, its 3x3 and strided
// 1x1 convs) as an implicit GEMM, the same tiling as conv_pointwise:
//   out[n][co][p] = bias[co] + sum_r W[co][r] * patch[n][p][r]
// with r = (ci, ky, kx) over cin*k*k (the OIHW weight row as it is) and
// column q = n * oh*ow + p. The patch values are gathered straight from the
// input (im2col on the fly, zero outside the image), so nothing is expanded
// in memory.
@compute @workgroup_size(16, 16)
fn conv_gemm(@builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let ohw = C.oh * C.ow;
    let cols = C.n * ohw;
    let kk2 = C.k * C.k;
    let red = C.cin * kk2; // reduction length
    let qtiles = (cols + PT - 1u) / PT;
    let ctiles = (C.cout + CT - 1u) / CT;
    let g = wid.x + wid.y * nwg.x;
    if (g >= qtiles * ctiles) {
        return; // whole workgroup: uniform
    }
    let q0 = (g % qtiles) * PT;
    let co0 = (g / qtiles) * CT;
    let t = lid.y * 16u + lid.x;
    // The column this invocation gathers: its image and output pixel.
    let q = q0 + t % PT;
    let q_ok = q < cols;
    let img = q / ohw;
    let p = q % ohw;
    let iy0 = i32((p / C.ow) * C.stride) - i32(C.pad.x);
    let ix0 = i32((p % C.ow) * C.stride) - i32(C.pad.y);
    let plane0 = img * C.cin;
    let krow = t / PT;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < red; k0 += KT) {
        for (var r = 0u; r < 4u; r++) {
            let e = t + 256u * r;
            let ri = k0 + krow + 4u * r;
            var v = 0.0;
            if (ri < red && q_ok) {
                let ci = ri / kk2;
                let tap = ri % kk2;
                let iy = iy0 + i32(tap / C.k);
                let ix = ix0 + i32(tap % C.k);
                if (iy >= 0 && ix >= 0 && iy < i32(C.h) && ix < i32(C.w)) {
                    v = f32(src[((plane0 + ci) * C.h + u32(iy)) * C.w + u32(ix)]);
                }
            }
            xs[e] = v;
            let kk = e % KT;
            let cc = e / KT;
            let wr = k0 + kk;
            let co = co0 + cc;
            var u = 0.0;
            if (co < C.cout && wr < red) {
                u = f32(wt[co * red + wr]);
            }
            ws[kk * CT + cc] = u;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            let xr = kk * PT + lid.x;
            let b = vec4<f32>(xs[xr], xs[xr + 16u], xs[xr + 32u], xs[xr + 48u]);
            let wr = kk * CT + lid.y;
            acc0 += ws[wr] * b;
            acc1 += ws[wr + 16u] * b;
            acc2 += ws[wr + 32u] * b;
            acc3 += ws[wr + 48u] * b;
        }
        workgroupBarrier();
    }
    var obase: vec4<u32>;
    for (var j = 0u; j < 4u; j++) {
        let qj = q0 + lid.x + 16u * j;
        obase[j] = select(0xffffffffu, (qj / ohw) * C.cout * ohw + qj % ohw, qj < cols);
    }
    store_pointwise(co0 + lid.y, ohw, obase, acc0);
    store_pointwise(co0 + lid.y + 16u, ohw, obase, acc1);
    store_pointwise(co0 + lid.y + 32u, ohw, obase, acc2);
    store_pointwise(co0 + lid.y + 48u, ohw, obase, acc3);
}

// Bias, activation and store of one channel's four columns.
fn store_pointwise(co: u32, hw: u32, obase: vec4<u32>, acc: vec4<f32>) {
    if (co >= C.cout) {
        return;
    }
    let bv = bias[co];
    for (var j = 0u; j < 4u; j++) {
        if (obase[j] != 0xffffffffu) {
            dst[obase[j] + co * hw] = S(activate(acc[j] + bv, C.act));
        }
    }
}

// Residual add: dst = act(src + wt), elementwise over C.total values.
@compute @workgroup_size(64)
fn add(@builtin(global_invocation_id) gid: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= C.total) {
        return;
    }
    dst[i] = S(activate(f32(src[i]) + f32(wt[i]), C.act));
}

// k x k max pooling, one invocation per output; taps outside the image are
// skipped (padding with -inf).
@compute @workgroup_size(64)
fn max_pool(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= C.total) {
        return;
    }
    let ox = i % C.ow;
    let oy = (i / C.ow) % C.oh;
    let plane = i / (C.ow * C.oh); // image * channels + channel
    let iy0 = i32(oy * C.stride) - i32(C.pad.x);
    let ix0 = i32(ox * C.stride) - i32(C.pad.x);
    let y_lo = u32(max(iy0, 0));
    let y_hi = u32(clamp(iy0 + i32(C.k), 0, i32(C.h)));
    let x_lo = u32(max(ix0, 0));
    let x_hi = u32(clamp(ix0 + i32(C.k), 0, i32(C.w)));
    var m = -3.4028235e38;
    for (var y = y_lo; y < y_hi; y++) {
        let row = (plane * C.h + y) * C.w;
        for (var x = x_lo; x < x_hi; x++) {
            m = max(m, f32(src[row + x]));
        }
    }
    dst[i] = S(m);
}

// GeM pooling, one invocation per (image, channel):
//   (mean over h*w of max(x, clamp)^p)^(1/p).
// L2 normalisation of each image's vector is done on the host.
@compute @workgroup_size(64)
fn gem(@builtin(global_invocation_id) gid: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= C.total) {
        return;
    }
    let hw = C.h * C.w;
    let p = C.f.x;
    let base = i * hw;
    var s = 0.0;
    for (var q = 0u; q < hw; q++) {
        let v = max(f32(src[base + q]), C.f.y);
        if (p == 3.0) {
            s += v * v * v;
        } else if (p == 1.0) {
            s += v;
        } else {
            s += pow(v, p);
        }
    }
    let m = s / f32(hw);
    var r = 0.0;
    if (m > 0.0) {
        r = select(pow(m, 1.0 / p), m, p == 1.0);
    }
    dst[i] = S(r);
}

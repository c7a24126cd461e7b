// Shared helpers, prepended to every kernel file by src/gpu/pipelines.rs,
// after its generated constants (WORKGROUP_SIZE: invocations per workgroup
// of the 1-D kernels, from the Rust constant of the same name).

struct Params {
    n: u32,          // images (or queries) in this dispatch
    zero: u32,       // always 0 at run time; XORed into products so no driver fuses them into FMAs
    a: u32,          // kernel-specific
    b: u32,          // kernel-specific
};

// Linear invocation index of a 1-D or 2-D dispatch (more than 65 535
// workgroups spill into y); WORKGROUP_SIZE invocations per workgroup.
fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WORKGROUP_SIZE;
}

// Unit in the last place of a positive normal f32.
fn ulp_of(q: f32) -> f32 {
    let e = bitcast<u32>(q) & 0x7f800000u;
    return bitcast<f32>(e - (23u << 23u));
}

// Exact s - q*c for q ~= s/c and integer c < 4096: q is split into two 12-bit
// halves (by masking bits, not arithmetic), so both products are exact and the
// two subtractions cancel exactly (Sterbenz, then a result that is a small
// multiple of ulp(q)). Exact products also make any FMA contraction harmless.
fn div_residual(s: f32, q: f32, c: f32) -> f32 {
    let qh = bitcast<f32>(bitcast<u32>(q) & 0xfffff000u);
    let ql = q - qh;
    return (s - qh * c) - ql * c;
}

// Correctly rounded (round-to-nearest-even) s / c for integer-valued c in
// 1..4095. WGSL only promises 2.5 ulp for `/`; the CPU reference divides with
// IEEE division, so the hardware quotient is corrected with an exact residual.
fn div_exact(s: f32, c: f32) -> f32 {
    let a = abs(s);
    if (a == 0.0 || c == 1.0) {
        return s;
    }
    var q = a / c;
    if ((bitcast<u32>(q) & 0x7f800000u) <= (24u << 23u)) {
        return select(q, -q, s < 0.0); // far below any value these kernels see
    }
    for (var it = 0; it < 4; it++) {
        let bits = bitcast<u32>(q);
        let odd = (bits & 1u) == 1u;
        let h_up = 0.5 * ulp_of(q) * c;
        // Below a power of two the next value down is half an ulp closer.
        let h_dn = select(h_up, 0.5 * h_up, (bits & 0x7fffffu) == 0u);
        let r = div_residual(a, q, c);
        if (r > h_up || (r == h_up && odd)) {
            q = bitcast<f32>(bits + 1u);
        } else if (r < -h_dn || (r == -h_dn && odd)) {
            q = bitcast<f32>(bits - 1u);
        } else {
            break;
        }
    }
    return select(q, -q, s < 0.0);
}

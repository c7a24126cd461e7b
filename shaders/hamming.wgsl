// Brute-force Hamming top-k: one invocation per (query, tile of db rows).
// The 64 invocations of a workgroup are 64 queries on the same tile, so each
// db tile is streamed from memory once per workgroup. Distance = min over the
// query's 8 orientation variants (first variant wins ties); each invocation
// keeps its tile's best KMAX (distance, row) in ascending order, ties to the
// lower row because rows are scanned ascending and only strictly better
// candidates displace the worst. The host merges tiles.
// P.n = queries, P.a = db rows in this chunk, P.b = tile length.

const KMAX: u32 = 32u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> db: array<u32>;      // 8 words per row
@group(0) @binding(2) var<storage, read> live: array<u32>;    // 1 bit per row
@group(0) @binding(3) var<storage, read> queries: array<u32>; // 64 words per query
@group(0) @binding(4) var<storage, read_write> best: array<u32>; // per (query, tile): KMAX x [row, dist<<8 | orient]
@group(0) @binding(5) var<uniform> K: vec4<u32>; // x = k (<= KMAX), y = tiles

@compute @workgroup_size(64)
fn topk(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    let tile = gid.y + gid.z * 65535u;
    let tiles = K.y;
    if (q >= P.n || tile >= tiles) { return; }
    var qw: array<u32, 64>;
    for (var i = 0u; i < 64u; i++) { qw[i] = queries[q * 64u + i]; }
    var rows: array<u32, KMAX>;
    var dists: array<u32, KMAX>;
    let k = K.x;
    var filled = 0u;
    let start = tile * P.b;
    let end = min(start + P.b, P.a);
    for (var r = start; r < end; r++) {
        if ((live[r / 32u] & (1u << (r % 32u))) == 0u) { continue; }
        var bd = 1000u;
        var bo = 0u;
        for (var v = 0u; v < 8u; v++) {
            var d = 0u;
            for (var w = 0u; w < 8u; w++) { d += countOneBits(db[r * 8u + w] ^ qw[v * 8u + w]); }
            if (d < bd) { bd = d; bo = v; }
        }
        if (filled == k && bd >= (dists[k - 1u] >> 8u)) { continue; }
        // Insert after every entry with distance <= bd.
        var pos = select(filled, k - 1u, filled == k);
        while (pos > 0u && (dists[pos - 1u] >> 8u) > bd) {
            rows[pos] = rows[pos - 1u];
            dists[pos] = dists[pos - 1u];
            pos--;
        }
        rows[pos] = r;
        dists[pos] = (bd << 8u) | bo;
        filled = min(filled + 1u, k);
    }
    let o = (q * tiles + tile) * KMAX * 2u;
    for (var i = 0u; i < KMAX; i++) {
        best[o + 2u * i] = rows[i];
        best[o + 2u * i + 1u] = select(0xffffffffu, dists[i], i < filled);
    }
}

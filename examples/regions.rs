//! The regions `check` would search inside each image (see README,
//! "Regions"): prints them as shares of the image and as pixels, with the
//! time the proposal took, and saves each region's crop (what is described
//! and searched) as PNG into OUT_DIR.
//!
//!     cargo run --release --example regions -- OUT_DIR IMAGE...

use lookalike::descriptors::regions::{crop, proposals};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: regions OUT_DIR IMAGE...");
        std::process::exit(2);
    }
    let out = std::path::Path::new(&args[1]);
    std::fs::create_dir_all(out).expect("cannot create OUT_DIR");
    for path in &args[2..] {
        let img = match image::open(path) {
            Ok(i) => i.to_rgb8(),
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        let t = std::time::Instant::now();
        let found = proposals(&img);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let stem = std::path::Path::new(path)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        println!(
            "{path}: {}x{}, {} regions, {ms:.1} ms",
            img.width(),
            img.height(),
            found.len()
        );
        for (i, r) in found.iter().enumerate() {
            let px = r.pixels(img.width(), img.height());
            let file = out.join(format!("{stem}.region{i}.png"));
            println!(
                "  x {:.4} y {:.4} w {:.4} h {:.4}  (pixels {px:?}) -> {}",
                r.x,
                r.y,
                r.w,
                r.h,
                file.display()
            );
            if let Err(e) = crop(&img, *r).save(&file) {
                eprintln!("{}: {e}", file.display());
            }
        }
    }
}

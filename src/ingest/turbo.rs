//! libjpeg-turbo's TurboJPEG 2.x C API, declared by hand (five functions; no
//! bindgen) and used for DCT-domain scaled decoding: at 1/2, 1/4 or 1/8 scale
//! the inverse DCT produces the small image directly, which is ~4x faster than
//! decoding at full size and resizing. Present only when build.rs found the
//! library (`cfg(has_turbojpeg)`).

#[cfg(has_turbojpeg)]
mod ffi {
    use std::os::raw::{c_char, c_int, c_uchar, c_ulong, c_void};
    unsafe extern "C" {
        pub fn tjInitDecompress() -> *mut c_void;
        pub fn tjDecompressHeader3(
            handle: *mut c_void,
            jpeg: *const c_uchar,
            size: c_ulong,
            width: *mut c_int,
            height: *mut c_int,
            subsamp: *mut c_int,
            colorspace: *mut c_int,
        ) -> c_int;
        pub fn tjDecompress2(
            handle: *mut c_void,
            jpeg: *const c_uchar,
            size: c_ulong,
            dst: *mut c_uchar,
            width: c_int,
            pitch: c_int,
            height: c_int,
            pixel_format: c_int,
            flags: c_int,
        ) -> c_int;
        pub fn tjDestroy(handle: *mut c_void) -> c_int;
        pub fn tjGetErrorStr2(handle: *mut c_void) -> *mut c_char;
        pub fn tjGetErrorCode(handle: *mut c_void) -> c_int;
    }
    pub const TJPF_RGB: c_int = 0;
    pub const TJFLAG_FASTDCT: c_int = 2048;
    pub const TJFLAG_ACCURATEDCT: c_int = 4096;
    pub const TJERR_WARNING: c_int = 0;
    pub const TJCS_CMYK: c_int = 3;
    pub const TJCS_YCCK: c_int = 4;
}

pub const AVAILABLE: bool = cfg!(has_turbojpeg);

/// Header facts needed before decoding (bomb checks, scale choice).
pub struct Header {
    pub width: u32,
    pub height: u32,
}

#[cfg(has_turbojpeg)]
struct Handle(*mut std::os::raw::c_void);

#[cfg(has_turbojpeg)]
impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tjInitDecompress and is dropped once.
        unsafe { ffi::tjDestroy(self.0) };
    }
}

#[cfg(has_turbojpeg)]
thread_local! {
    // One decompressor per thread: creating one allocates libjpeg state.
    static HANDLE: Handle = Handle(unsafe { ffi::tjInitDecompress() });
}

#[cfg(has_turbojpeg)]
fn last_error(h: *mut std::os::raw::c_void) -> (bool, String) {
    // SAFETY: valid handle; libjpeg-turbo returns a NUL-terminated static/owned buffer.
    unsafe {
        let msg = std::ffi::CStr::from_ptr(ffi::tjGetErrorStr2(h))
            .to_string_lossy()
            .into_owned();
        (ffi::tjGetErrorCode(h) == ffi::TJERR_WARNING, msg)
    }
}

/// Decodes `data` to RGB at `1/denom` scale (denom in 1, 2, 4, 8).
/// `accurate` selects the slow integer IDCT (what Pillow uses) for exact mode.
/// Returns Ok(None) for JPEGs TurboJPEG cannot convert to RGB (CMYK): the
/// caller falls back to the `image` crate.
#[cfg(has_turbojpeg)]
pub fn decode(
    data: &[u8],
    pick_denom: impl FnOnce(&Header) -> Result<u32, String>,
    accurate: bool,
) -> Result<Option<(image::RgbImage, Header)>, String> {
    use std::os::raw::{c_int, c_ulong};
    HANDLE.with(|h| {
        let h = h.0;
        if h.is_null() {
            return Err("libjpeg-turbo could not allocate a decoder".into());
        }
        let (mut w, mut ht, mut ss, mut cs): (c_int, c_int, c_int, c_int) = (0, 0, 0, 0);
        // SAFETY: pointers are valid for the call; data.len() bounds the read.
        let r = unsafe {
            ffi::tjDecompressHeader3(
                h,
                data.as_ptr(),
                data.len() as c_ulong,
                &mut w,
                &mut ht,
                &mut ss,
                &mut cs,
            )
        };
        if r != 0 {
            return Err(format!("corrupt JPEG: {}", last_error(h).1));
        }
        if w <= 0 || ht <= 0 {
            return Err("JPEG with zero size".into());
        }
        let header = Header {
            width: w as u32,
            height: ht as u32,
        };
        if cs == ffi::TJCS_CMYK || cs == ffi::TJCS_YCCK {
            return Ok(None);
        }
        let denom = pick_denom(&header)?;
        let sw = (header.width + denom - 1) / denom;
        let sh = (header.height + denom - 1) / denom;
        let mut px = vec![0u8; sw as usize * sh as usize * 3];
        let flags = if accurate {
            ffi::TJFLAG_ACCURATEDCT
        } else {
            ffi::TJFLAG_FASTDCT
        };
        // SAFETY: px holds sw*sh*3 bytes, exactly what TJPF_RGB at this size writes.
        let r = unsafe {
            ffi::tjDecompress2(
                h,
                data.as_ptr(),
                data.len() as c_ulong,
                px.as_mut_ptr(),
                sw as c_int,
                0,
                sh as c_int,
                ffi::TJPF_RGB,
                flags,
            )
        };
        if r != 0 {
            let (warning, msg) = last_error(h);
            // Warnings such as extraneous bytes still give a whole image; a
            // premature end means the bottom is missing: skip, don't index half an image.
            if !warning || msg.contains("Premature end") {
                return Err(format!("corrupt or truncated JPEG: {msg}"));
            }
        }
        let img = image::RgbImage::from_raw(sw, sh, px).ok_or("JPEG buffer size mismatch")?;
        Ok(Some((img, header)))
    })
}

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

/// Whether this build links libjpeg-turbo; without it fast mode uses a
/// fallback scaled JPEG decoder.
pub const AVAILABLE: bool = cfg!(has_turbojpeg);

/// Header facts needed before decoding (bomb checks, scale choice).
pub struct Header {
    /// Width in pixels, as stored (before EXIF rotation).
    pub width: u32,
    /// Height in pixels, as stored (before EXIF rotation).
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
    // A handle that saw an error is dropped, never reused (see `decode`).
    static HANDLE: std::cell::RefCell<Option<Handle>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's decompressor, creating it on first use. When
/// `f` fails, or sets its flag because libjpeg reported a warning, the
/// handle is destroyed: TurboJPEG 2.x leaves a handle whose
/// header read failed in a state where later, valid JPEGs fail too ("Bogus
/// marker length"), so one corrupt file poisoned every JPEG after it on the
/// thread. A fresh handle costs one `tjInitDecompress`, on failures only.
#[cfg(has_turbojpeg)]
fn with_handle<T, E: From<String>>(
    f: impl FnOnce(*mut std::os::raw::c_void, &mut bool) -> Result<T, E>,
) -> Result<T, E> {
    HANDLE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            // SAFETY: plain constructor; a null result is handled below.
            let h = unsafe { ffi::tjInitDecompress() };
            if h.is_null() {
                return Err(E::from("libjpeg-turbo could not allocate a decoder".into()));
            }
            *slot = Some(Handle(h));
        }
        let h = slot.as_ref().expect("just set").0;
        let mut saw_error = false;
        let r = f(h, &mut saw_error);
        if r.is_err() || saw_error {
            *slot = None;
        }
        r
    })
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
pub fn decode<E: From<String>>(
    data: &[u8],
    pick_denom: impl FnOnce(&Header) -> Result<u32, E>,
    accurate: bool,
) -> Result<Option<(image::RgbImage, Header)>, E> {
    use std::os::raw::{c_int, c_ulong};
    with_handle(|h, saw_error| {
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
            return Err(E::from(format!("corrupt JPEG: {}", last_error(h).1)));
        }
        if w <= 0 || ht <= 0 {
            return Err(E::from("JPEG with zero size".into()));
        }
        let header = Header {
            width: w as u32,
            height: ht as u32,
        };
        if cs == ffi::TJCS_CMYK || cs == ffi::TJCS_YCCK {
            return Ok(None);
        }
        let denom = pick_denom(&header)?;
        let sw = header.width.div_ceil(denom);
        let sh = header.height.div_ceil(denom);
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
            *saw_error = true;
            // Warnings such as extraneous bytes still give a whole image; a
            // premature end means the bottom is missing: skip, don't index half an image.
            if !warning || msg.contains("Premature end") {
                return Err(E::from(format!("corrupt or truncated JPEG: {msg}")));
            }
        }
        let img = image::RgbImage::from_raw(sw, sh, px)
            .ok_or_else(|| E::from("JPEG buffer size mismatch".into()))?;
        Ok(Some((img, header)))
    })
}

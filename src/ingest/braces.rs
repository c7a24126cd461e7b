//! Brace patterns as shells and WebDataset write them:
//! `shards/{00000..00999}.tar` (a numeric range, zero-padded to the wider
//! bound when either bound has a leading zero, descending when the first
//! bound is larger) and `{train,val}/x.tar` (a list; lists nest). A brace
//! pair that is neither stays as it is. Expanded here so that the pattern
//! works when quoted and on shells without brace expansion.

/// Most paths one pattern may expand to.
pub const MAX_PATHS: usize = 1_000_000;

/// Every path `pattern` stands for, in order. `Err` when it would expand to
/// more than [`MAX_PATHS`].
pub fn expand(pattern: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    expand_into(pattern, &mut out)?;
    Ok(out)
}

/// Whether `pattern` holds a brace group that expands.
pub fn has_pattern(pattern: &str) -> bool {
    first_group(pattern).is_ok_and(|g| g.is_some())
}

fn too_many() -> String {
    format!("brace pattern expands to more than {MAX_PATHS} paths")
}

fn expand_into(p: &str, out: &mut Vec<String>) -> Result<(), String> {
    match first_group(p)? {
        None => {
            if out.len() >= MAX_PATHS {
                return Err(too_many());
            }
            out.push(p.to_string());
        }
        Some((open, close, alts)) => {
            for a in alts {
                expand_into(&format!("{}{}{}", &p[..open], a, &p[close + 1..]), out)?;
            }
        }
    }
    Ok(())
}

/// The first brace group that expands: its `{` and `}` byte offsets and its
/// alternatives.
fn first_group(p: &str) -> Result<Option<(usize, usize, Vec<String>)>, String> {
    let b = p.as_bytes();
    for open in (0..b.len()).filter(|&i| b[i] == b'{') {
        let Some(close) = matching(b, open) else {
            continue;
        };
        let inner = &p[open + 1..close];
        let parts = split_top(inner);
        if parts.len() > 1 {
            return Ok(Some((open, close, parts)));
        }
        if let Some(r) = range(inner)? {
            return Ok(Some((open, close, r)));
        }
    }
    Ok(None)
}

/// Offset of the `}` closing the `{` at `open`.
fn matching(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `inner` split at the commas outside nested braces.
fn split_top(inner: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(inner[start..i].to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(inner[start..].to_string());
    parts
}

/// `A..B` with decimal bounds: the numbers from A to B.
fn range(inner: &str) -> Result<Option<Vec<String>>, String> {
    let Some((a, b)) = inner.split_once("..") else {
        return Ok(None);
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 18 && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return Ok(None);
    }
    let (lo, hi): (u64, u64) = (a.parse().unwrap_or(0), b.parse().unwrap_or(0));
    if lo.abs_diff(hi) >= MAX_PATHS as u64 {
        return Err(too_many());
    }
    let padded = |s: &str| s.len() > 1 && s.starts_with('0');
    let width = if padded(a) || padded(b) {
        a.len().max(b.len())
    } else {
        0
    };
    let nums: Vec<u64> = if lo <= hi {
        (lo..=hi).collect()
    } else {
        (hi..=lo).rev().collect()
    };
    Ok(Some(
        nums.into_iter().map(|n| format!("{n:0width$}")).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn zero_padded_range() {
        let v = expand("shards/{00000..00003}.tar").unwrap();
        assert_eq!(
            v,
            [
                "shards/00000.tar",
                "shards/00001.tar",
                "shards/00002.tar",
                "shards/00003.tar"
            ]
        );
        assert_eq!(expand("{8..11}").unwrap(), ["8", "9", "10", "11"]);
        assert_eq!(expand("{3..1}").unwrap(), ["3", "2", "1"]);
        assert_eq!(expand("{098..101}").unwrap(), ["098", "099", "100", "101"]);
    }

    #[test]
    fn lists_nest_and_combine() {
        assert_eq!(
            expand("{a,b{1,2}}/{0..1}.tar").unwrap(),
            ["a/0.tar", "a/1.tar", "b1/0.tar", "b1/1.tar", "b2/0.tar", "b2/1.tar"]
        );
    }

    #[test]
    fn literal_braces_stay() {
        assert_eq!(expand("x/{a}.tar").unwrap(), ["x/{a}.tar"]);
        assert_eq!(expand("x/{a..z}{").unwrap(), ["x/{a..z}{"]);
        assert_eq!(expand("plain.tar").unwrap(), ["plain.tar"]);
        assert_eq!(expand("{x}{1,2}").unwrap(), ["{x}1", "{x}2"]);
    }

    #[test]
    fn huge_ranges_are_refused() {
        assert!(expand("{0..99999999}").is_err());
        assert!(expand("{0..999}{0..999}{0..9}").is_err());
    }
}

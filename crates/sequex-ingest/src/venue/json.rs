//! Just enough JSON to route a frame: the raw text of a few top-level members of an
//! object, read in one forward pass that stops as soon as they are found.
//!
//! Why not a JSON parser: the payload is forwarded byte for byte, so nothing needs to be
//! decoded, and exchanges put the routing fields (`e`, `E`, `t`, `U`, `u`) before the bulky
//! arrays. Stopping early keeps classification in the tens of nanoseconds whatever the size
//! of the depth arrays (see `benches/classify.rs` for the parser alternatives).

use memchr::memchr2;

/// Why a scan failed; every variant means the bytes are not a well-formed JSON object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// The input ended inside the object.
    Truncated,
    /// A byte that cannot stand where it is.
    Unexpected,
}

/// Returns the raw text of the top-level members `keys` of the object `obj` (which must
/// start with `{`), exactly as written (strings with their quotes). A key that is absent
/// is `None`. Members after the last wanted one are not read.
pub(crate) fn members<'a, const N: usize>(
    obj: &'a [u8],
    keys: [&[u8]; N],
) -> Result<[Option<&'a [u8]>; N], ScanError> {
    let mut found = [None; N];
    let mut missing = N;
    let mut pos = expect(obj, skip_ws(obj, 0), b'{')?;
    pos = skip_ws(obj, pos);
    if obj.get(pos) == Some(&b'}') {
        return Ok(found);
    }
    loop {
        pos = expect(obj, pos, b'"')?;
        let key_end = string_end(obj, pos)?;
        let key = &obj[pos..key_end];
        pos = skip_ws(obj, key_end + 1);
        pos = skip_ws(obj, expect(obj, pos, b':')?);
        let (value, next) = value(obj, pos)?;
        if let Some(i) = index_of(&keys, key)
            && found[i].is_none()
        {
            found[i] = Some(value);
            missing -= 1;
            if missing == 0 {
                return Ok(found);
            }
        }
        pos = skip_ws(obj, next);
        match obj.get(pos) {
            Some(b',') => pos = skip_ws(obj, pos + 1),
            Some(b'}') => return Ok(found),
            Some(_) => return Err(ScanError::Unexpected),
            None => return Err(ScanError::Truncated),
        }
    }
}

/// Where `part`, a slice `members` or `element` returned from `whole`, lies in it: the
/// range to slice a payload out of the frame without copying.
pub(crate) fn range_in(whole: &[u8], part: &[u8]) -> std::ops::Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

/// The next element of an array: `pos` is just past its `[` or a previous element.
/// Returns the element's range and where to look for the one after it, or `None` at the
/// array's `]`.
pub(crate) fn element(
    buf: &[u8],
    pos: usize,
) -> Result<Option<(std::ops::Range<usize>, usize)>, ScanError> {
    let start = skip_ws(buf, pos);
    if buf.get(start) == Some(&b']') {
        return Ok(None);
    }
    let (_, end) = value(buf, start)?;
    let after = skip_ws(buf, end);
    match buf.get(after) {
        Some(b',') => Ok(Some((start..end, after + 1))),
        Some(b']') => Ok(Some((start..end, after))),
        Some(_) => Err(ScanError::Unexpected),
        None => Err(ScanError::Truncated),
    }
}

/// The position of `key` in `keys`. Keys are a byte or two: an inlined loop beats a
/// `memcmp` call per comparison.
#[inline(always)]
fn index_of(keys: &[&[u8]], key: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < keys.len() {
        let k = keys[i];
        if k.len() == key.len() && k.iter().zip(key).all(|(a, b)| a == b) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The index of the first `needle` in `haystack`, eight bytes at a time. For the short
/// runs routing reads (stream names, symbols) this beats both a byte loop and a `memchr`
/// call, whose set-up costs more than the search.
#[inline(always)]
pub(crate) fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let pattern = LOW.wrapping_mul(u64::from(needle));
    let mut chunks = haystack.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks_exact yields 8 bytes"));
        let x = word ^ pattern;
        // A zero byte in `x` is a match; this sets its high bit (and no bit below the first).
        let found = x.wrapping_sub(LOW) & !x & HIGH;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| offset + i)
}

/// A run of 1 to 19 ASCII digits at the start of `text` (19 digits cannot overflow) and
/// what follows it. With 16 bytes to read (always, inside an event) it reads two words and
/// no byte on its own: about 30 instructions for a 13-digit millisecond time.
#[inline(always)]
pub(crate) fn leading_u64(text: &[u8]) -> Option<(u64, &[u8])> {
    let Some(head) = text.get(..16) else {
        return leading_u64_bytewise(text);
    };
    let (d0, n0) = digit_word(&head[..8]);
    if n0 < 8 {
        // `n0` digits, right-aligned in an eight-digit word of leading zeros.
        return (n0 > 0).then(|| (eight_digits(d0 << (64 - 8 * n0)), &text[n0..]));
    }
    let (d1, n1) = digit_word(&head[8..]);
    let high = eight_digits(d0);
    match n1 {
        0 => Some((high, &text[8..])),
        8 => leading_u64_bytewise(text),
        n => Some((
            high * POW10[n] + eight_digits(d1 << (64 - 8 * n)),
            &text[8 + n..],
        )),
    }
}

const POW10: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// The eight bytes as digit values (byte minus `'0'`) and how many of them, from the
/// first, are digits. Bytes after the first non-digit are not meaningful.
#[inline(always)]
fn digit_word(bytes: &[u8]) -> (u64, usize) {
    let word = u64::from_le_bytes(bytes.try_into().expect("called with 8 bytes"));
    let digits = word.wrapping_sub(0x3030_3030_3030_3030);
    // A byte is a digit when it is 0..=9 before and after adding 6: no high nibble. A
    // borrow or carry only reaches bytes after the first non-digit.
    let other = (digits | digits.wrapping_add(0x0606_0606_0606_0606)) & 0xF0F0_F0F0_F0F0_F0F0;
    (digits, (other.trailing_zeros() / 8) as usize)
}

/// The value of eight digit values (little-endian, first digit lowest), with two
/// multiplications (D. Lemire, "Fast integer parsing").
#[inline(always)]
fn eight_digits(digits: u64) -> u64 {
    let pairs = digits.wrapping_mul(10).wrapping_add(digits >> 8);
    let low = (pairs & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32));
    let high = ((pairs >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32));
    low.wrapping_add(high) >> 32
}

/// [`leading_u64`] a byte at a time, for the last bytes of a buffer and 17+ digits.
fn leading_u64_bytewise(text: &[u8]) -> Option<(u64, &[u8])> {
    let len = text
        .iter()
        .take(20)
        .take_while(|b| b.is_ascii_digit())
        .count();
    let value = text[..len].iter().fold(0u64, |acc, &b| {
        acc.wrapping_mul(10).wrapping_add(u64::from(b - b'0'))
    });
    (1..=19).contains(&len).then(|| (value, &text[len..]))
}

/// Parses an unsigned decimal integer written without sign, fraction or exponent.
pub(crate) fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn expect(buf: &[u8], pos: usize, byte: u8) -> Result<usize, ScanError> {
    match buf.get(pos) {
        Some(b) if *b == byte => Ok(pos + 1),
        Some(_) => Err(ScanError::Unexpected),
        None => Err(ScanError::Truncated),
    }
}

fn skip_ws(buf: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\r' | b'\n') = buf.get(pos) {
        pos += 1;
    }
    pos
}

/// `start` is just past an opening quote; returns the index of the closing quote.
#[inline(always)]
fn string_end(buf: &[u8], start: usize) -> Result<usize, ScanError> {
    // Routing fields are short strings: a plain loop first, SIMD only for long ones.
    for (i, &b) in buf.iter().enumerate().skip(start).take(24) {
        match b {
            b'"' => return Ok(i),
            b'\\' => return string_end_long(buf, i),
            _ => {}
        }
    }
    string_end_long(buf, start)
}

#[inline(never)]
fn string_end_long(buf: &[u8], start: usize) -> Result<usize, ScanError> {
    let mut pos = start;
    loop {
        match memchr2(b'"', b'\\', &buf[pos..]) {
            Some(i) if buf[pos + i] == b'"' => return Ok(pos + i),
            // An escape: skip the backslash and the escaped byte.
            Some(i) => pos += i + 2,
            None => return Err(ScanError::Truncated),
        }
        if pos > buf.len() {
            return Err(ScanError::Truncated);
        }
    }
}

/// Returns the value starting at `pos` (strings with their quotes) and the index after it.
fn value(buf: &[u8], pos: usize) -> Result<(&[u8], usize), ScanError> {
    match buf.get(pos) {
        None => Err(ScanError::Truncated),
        Some(b'"') => {
            let end = string_end(buf, pos + 1)?;
            Ok((&buf[pos..=end], end + 1))
        }
        Some(b'{' | b'[') => {
            let end = container_end(buf, pos)?;
            Ok((&buf[pos..end], end))
        }
        Some(b',' | b'}' | b']' | b':') => Err(ScanError::Unexpected),
        // A number, `true`, `false` or `null`; the caller checks what follows it.
        Some(_) => {
            let len = buf[pos..]
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
                .ok_or(ScanError::Truncated)?;
            if len == 0 {
                return Err(ScanError::Unexpected);
            }
            Ok((&buf[pos..pos + len], pos + len))
        }
    }
}

/// `pos` is at `{` or `[`; returns the index just past its matching close.
fn container_end(buf: &[u8], mut pos: usize) -> Result<usize, ScanError> {
    let mut depth = 0usize;
    while let Some(&b) = buf.get(pos) {
        match b {
            b'"' => pos = string_end(buf, pos + 1)?,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(pos + 1);
                }
            }
            _ => {}
        }
        pos += 1;
    }
    Err(ScanError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_members_and_stops_early() {
        let obj = br#"{"e":"depthUpdate","E":1723161255208,"s":"BTCUSDT","U":50093239189,"u":50093239202,"b":[["1","2"]],"a":[]}"#;
        let [e, big_e, u] = members(obj, [b"e", b"E", b"u"]).unwrap();
        assert_eq!(e, Some(&br#""depthUpdate""#[..]));
        assert_eq!(big_e.and_then(parse_u64), Some(1723161255208));
        assert_eq!(u.and_then(parse_u64), Some(50093239202));
        // Stopping early means garbage after the wanted members is not seen.
        let [t] = members(br#"{"t":1,"b":[[oops"#, [b"t"]).unwrap();
        assert_eq!(t, Some(&b"1"[..]));
    }

    #[test]
    fn skips_nested_values_strings_and_escapes() {
        let obj = br#" { "x" : {"a":[1,"]}\"",{}]} , "s":"a\"b" , "t" : 42 } "#;
        let [s, t, z] = members(obj, [b"s", b"t", b"z"]).unwrap();
        assert_eq!(s, Some(&br#""a\"b""#[..]));
        assert_eq!(t, Some(&b"42"[..]));
        assert_eq!(z, None);
    }

    #[test]
    fn rejects_malformed_and_truncated() {
        // TC: (input, error)
        let cases: &[(&[u8], ScanError)] = &[
            (b"", ScanError::Truncated),
            (b"[1]", ScanError::Unexpected),
            (br#"{"t":1"#, ScanError::Truncated),
            (br#"{"t":"abc"#, ScanError::Truncated),
            (br#"{"x":[1,2"#, ScanError::Truncated),
            (br#"{"t" 1}"#, ScanError::Unexpected),
            (br#"{"x":1;"t":2}"#, ScanError::Unexpected),
            (br#"{t:1}"#, ScanError::Unexpected),
            (br#"{"x":,"t":1}"#, ScanError::Unexpected),
        ];
        for (input, err) in cases {
            assert_eq!(
                members(input, [b"t"]),
                Err(*err),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(members(b"{}", [b"t"]), Ok([None]));
    }

    #[test]
    fn word_at_a_time_helpers_agree_with_plain_loops() {
        let text = b"btcusdt@depth@100ms\",\"data\":{}";
        for n in 0..text.len() {
            for needle in [b'"', b'@', b'{', b'x'] {
                let want = text[n..].iter().position(|&b| b == needle);
                assert_eq!(find_byte(&text[n..], needle), want);
            }
        }
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..10_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = seed % 10u64.pow((seed % 19) as u32 + 1);
            for tail in [",", r#","p":"61837.63000000""#] {
                let text = format!("{n}{tail}");
                let rest = leading_u64(text.as_bytes()).map(|(v, rest)| (v, rest.len()));
                assert_eq!(rest, Some((n, tail.len())), "{text}");
            }
        }
        assert_eq!(
            leading_u64(b"1234567890123456789}"),
            Some((1234567890123456789, &b"}"[..]))
        );
        assert_eq!(leading_u64(b"12345678901234567890"), None, "20 digits");
        assert_eq!(leading_u64(b"x1"), None);
        assert_eq!(leading_u64(b"12345678:"), Some((12345678, &b":"[..])));
        assert_eq!(leading_u64(b"1234567/9"), Some((1234567, &b"/9"[..])));
    }

    #[test]
    fn parses_only_plain_unsigned_integers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"-1",
            b"1.5",
            b"1e3",
            b"18446744073709551616",
            b"\"1\"",
        ] {
            assert_eq!(parse_u64(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn walks_array_elements() {
        let buf = br#"[{"a":[1,2]} , {"b":"]"},3]"#;
        let mut pos = 1;
        let mut seen = Vec::new();
        while let Some((range, next)) = element(buf, pos).unwrap() {
            seen.push(std::str::from_utf8(&buf[range]).unwrap());
            pos = next;
        }
        assert_eq!(seen, [r#"{"a":[1,2]}"#, r#"{"b":"]"}"#, "3"]);
        assert_eq!(element(b"[]", 1), Ok(None));
        assert_eq!(element(br#"[{"a":1} x]"#, 1), Err(ScanError::Unexpected));
        assert_eq!(element(br#"[{"a":1}"#, 1), Err(ScanError::Truncated));
    }
}

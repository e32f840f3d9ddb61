//! The one pass's JSON reader: what it checks and builds, below the event's
//! shape (which `envelope` reads with it).

use std::collections::HashMap;

use serde::Deserialize;
use serde_dynamo::{AttributeValue, Item};

use super::item_of;

/// The one pass: a validating JSON reader that builds what it reads as it
/// goes. Every read answers `None` for input it does not take (malformed,
/// or not in the shape it reads); the caller then leaves that part to
/// serde.
pub(super) struct Reader<'a> {
    pub(super) text: &'a str,
    bytes: &'a [u8],
    pub(super) at: usize,
    /// The members of the maps being read, innermost last: each map is
    /// built at its end, at its size.
    members: Vec<(String, AttributeValue)>,
}

thread_local! {
    /// The members buffer of the last reader, for the next one: most
    /// images are read on the same thread, and a buffer that has grown to
    /// an item's size saves every later item the growing.
    static SCRATCH: std::cell::Cell<Vec<(String, AttributeValue)>> =
        const { std::cell::Cell::new(Vec::new()) };
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        // Not one that an odd, huge map left behind.
        if self.members.capacity() <= 1024 {
            let mut members = std::mem::take(&mut self.members);
            members.clear();
            SCRATCH.with(|s| s.set(members));
        }
    }
}

/// Nesting the reader follows inside a skipped value; deeper is left to
/// serde.
const MAX_DEPTH: u32 = 128;

/// Nesting of a value handed to serde whole (keys, the user identity): far
/// enough under serde's own limit that the value reads the same alone as
/// within the event.
const MAX_DECODED_DEPTH: u32 = 64;

/// Nesting of attribute values (maps and lists) the reader builds; deeper
/// ones are left to serde.
const MAX_VALUE_DEPTH: u32 = 32;

/// The first `"`, `\` or control character at or after `at` (a string's
/// end, an escape or an error): sixteen bytes at a time where SSE2 is (every
/// x86_64), eight at a time elsewhere.
#[inline(always)]
fn string_stop(bytes: &[u8], at: usize) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    return sse2::string_stop_16(bytes, at);
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    string_stop_8(bytes, at)
}

/// [`string_stop`] eight bytes at a time, in plain integer arithmetic.
#[inline]
fn string_stop_8(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = u64::MAX / 255;
    while let Some(chunk) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*chunk);
        let control = word.wrapping_sub(ONES * 0x20) & !word;
        let quote = word ^ (ONES * u64::from(b'"'));
        let quote = quote.wrapping_sub(ONES) & !quote;
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let backslash = backslash.wrapping_sub(ONES) & !backslash;
        let hits = (control | quote | backslash) & (ONES << 7);
        if hits != 0 {
            // The lowest hit is exact (a borrow only marks higher bytes).
            return at + hits.trailing_zeros() as usize / 8;
        }
        at += 8;
    }
    while at < bytes.len() && !matches!(bytes[at], b'"' | b'\\' | 0..=0x1f) {
        at += 1;
    }
    at
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    /// [`super::string_stop`] sixteen bytes at a time; the last few bytes
    /// eight at a time.
    #[inline(always)]
    pub(super) fn string_stop_16(bytes: &[u8], mut at: usize) -> usize {
        // SAFETY: SSE2 is enabled for this build (the module's `cfg`), as
        // on every x86_64; the load reads the 16 bytes of `block`.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let last_control = _mm_set1_epi8(0x1f);
            while let Some(block) = bytes.get(at..).and_then(<[u8]>::first_chunk::<16>) {
                let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
                // A control character is its own maximum with 0x1f.
                let control = _mm_cmpeq_epi8(_mm_max_epu8(v, last_control), last_control);
                let hits = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                    control,
                );
                let mask = _mm_movemask_epi8(hits) as u32;
                if mask != 0 {
                    return at + mask.trailing_zeros() as usize;
                }
                at += 16;
            }
        }
        super::string_stop_8(bytes, at)
    }
}

impl<'a> Reader<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Reader {
            text,
            bytes: text.as_bytes(),
            at: 0,
            members: SCRATCH.with(|s| s.take()),
        }
    }

    #[inline(always)]
    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    #[inline(always)]
    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    #[inline(always)]
    pub(super) fn byte(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    /// Nothing but whitespace left.
    pub(super) fn end(&mut self) -> Option<()> {
        self.ws();
        (self.at == self.bytes.len()).then_some(())
    }

    /// After an opening `"`: up to and past the closing one, checking
    /// escapes as serde does where it skips. Whether it had escapes.
    // Inlined everywhere: called for every string of the event, where a
    // call's own cost was a tenth of the pass.
    #[inline(always)]
    fn string_body(&mut self) -> Option<bool> {
        let mut escaped = false;
        loop {
            self.at = string_stop(self.bytes, self.at);
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(escaped);
                }
                b'\\' => {
                    escaped = true;
                    match *self.bytes.get(self.at + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                        b'u' => {
                            let hex = self.bytes.get(self.at + 2..self.at + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.at += 6;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    /// A string without escapes, borrowed.
    pub(super) fn plain(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        let start = self.at;
        if self.string_body()? {
            return None;
        }
        Some(&self.text[start..self.at - 1])
    }

    /// A string, unescaped by serde when it has escapes.
    pub(super) fn string(&mut self) -> Option<String> {
        let start = self.at;
        self.byte(b'"')?;
        if self.string_body()? {
            serde_json::from_str(&self.text[start..self.at]).ok()
        } else {
            Some(self.text[start + 1..self.at - 1].to_owned())
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        (self.bytes.get(self.at..self.at + word.len())? == word).then(|| self.at += word.len())
    }

    /// A `null` (read), or not.
    pub(super) fn null(&mut self) -> bool {
        self.literal(b"null").is_some()
    }

    fn boolean(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => None,
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => {
                self.at += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// A number that is a whole number of at most 15 digits (as a stream
    /// record's `ApproximateCreationDateTime` is): its value, exact in an
    /// `f64` as serde reads it. `None`, and the reader unmoved, for any
    /// other value (serde reads it then).
    pub(super) fn whole_seconds(&mut self) -> Option<f64> {
        let start = self.at;
        let digits = self.digits();
        let ends = !matches!(self.peek(), Some(b'.' | b'e' | b'E'));
        let leading_zero = digits > 1 && self.bytes[start] == b'0';
        if digits == 0 || digits > 15 || !ends || leading_zero {
            self.at = start;
            return None;
        }
        let value = self.text[start..self.at].parse::<u64>().ok()?;
        // Exact: 15 digits are below 2^53.
        #[allow(clippy::cast_precision_loss)]
        Some(value as f64)
    }

    /// A member's name and the `:` after it; whether the name has escapes.
    #[inline(always)]
    pub(super) fn name(&mut self) -> Option<(&'a str, bool)> {
        self.byte(b'"')?;
        let start = self.at;
        let escaped = self.string_body()?;
        let name = &self.text[start..self.at - 1];
        self.ws();
        self.byte(b':')?;
        self.ws();
        Some((name, escaped))
    }

    /// Past one value of any kind, checked as serde checks what it skips.
    #[inline(always)]
    pub(super) fn skip(&mut self) -> Option<()> {
        // Most values of an image, `{"S":"..."}` and `{"N":"..."}`, read
        // here without a call (the general walk below reads them alike).
        let start = self.at;
        if self.tagged_string()? {
            if self.peek() == Some(b'}') {
                self.at += 1;
                return Some(());
            }
            self.at = start;
        }
        self.skip_within(MAX_DEPTH)
    }

    /// Past `{"<tag>":"<string>` when that comes next (a one-letter type
    /// tag, no whitespace): whether it did; the object is left open.
    #[inline(always)]
    fn tagged_string(&mut self) -> Option<bool> {
        let head = self.bytes.get(self.at..).and_then(<[u8]>::first_chunk::<6>);
        if let Some([b'{', b'"', b'A'..=b'Z', b'"', b':', b'"']) = head {
            self.at += 6;
            self.string_body()?;
            return Some(true);
        }
        Some(false)
    }

    fn skip_within(&mut self, max_depth: u32) -> Option<()> {
        // The open containers, innermost in the lowest bit: 1 an object.
        let mut open: u128 = 0;
        let mut depth = 0;
        loop {
            self.ws();
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    self.string_body()?;
                }
                b'{' => {
                    if depth == max_depth {
                        return None;
                    }
                    if self.tagged_string()? {
                        // Most values of an image, `{"S":"..."}`, read
                        // straight through; the object stays open if more
                        // follows.
                        if self.peek() == Some(b'}') {
                            self.at += 1;
                        } else {
                            (open, depth) = (open << 1 | 1, depth + 1);
                        }
                    } else {
                        self.at += 1;
                        self.ws();
                        if self.peek() == Some(b'}') {
                            self.at += 1;
                        } else {
                            (open, depth) = (open << 1 | 1, depth + 1);
                            self.name()?;
                            continue;
                        }
                    }
                }
                b'[' => {
                    self.at += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.at += 1;
                    } else {
                        if depth == max_depth {
                            return None;
                        }
                        (open, depth) = (open << 1, depth + 1);
                        // Strings in a row (string sets, most of a stamp's
                        // `d`) read here; anything else the loop reads.
                        if !self.strings_in_a_row()? {
                            continue;
                        }
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // A value ended: close the containers it ends.
            loop {
                if depth == 0 {
                    return Some(());
                }
                self.ws();
                let object = open & 1 == 1;
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        if object {
                            self.ws();
                            self.name()?;
                        }
                        break;
                    }
                    b'}' if object => {}
                    b']' if !object => {}
                    _ => return None,
                }
                self.at += 1;
                (open, depth) = (open >> 1, depth - 1);
            }
        }
    }

    /// Within an array: past the strings that come next, each with the
    /// `,` after it. Whether the array's last read value was one of them
    /// (the reader is then past it); `false` when the next value is
    /// something else, for the caller to read.
    #[inline(always)]
    fn strings_in_a_row(&mut self) -> Option<bool> {
        while self.peek() == Some(b'"') {
            self.at += 1;
            self.string_body()?;
            self.ws();
            if self.peek() != Some(b',') {
                return Some(true);
            }
            self.at += 1;
            self.ws();
        }
        Some(false)
    }

    /// The members of the object whose `{` is next, each handed to `each`
    /// with its name (and whether the name has escapes) and the reader at
    /// its value.
    pub(super) fn members(
        &mut self,
        mut each: impl FnMut(&mut Self, &'a str, bool) -> Option<()>,
    ) -> Option<()> {
        self.byte(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Some(());
        }
        loop {
            let (name, escaped) = self.name()?;
            each(self, name, escaped)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.ws();
                }
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The elements of the array whose `[` is next, each read by `each`.
    pub(super) fn elements(&mut self, mut each: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.byte(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Some(());
        }
        loop {
            each(self)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.ws();
                }
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A value decoded by serde from its own text.
    pub(super) fn decoded<T: Deserialize<'a>>(&mut self) -> Option<T> {
        let start = self.at;
        self.skip_within(MAX_DECODED_DEPTH)?;
        serde_json::from_str(&self.text[start..self.at]).ok()
    }

    /// `read`, or when it does not take the value: past the value
    /// (checked), and `Some(None)`.
    pub(super) fn attempt<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<Option<T>> {
        let start = self.at;
        match read(self) {
            Some(value) => Some(Some(value)),
            None => {
                self.at = start;
                self.skip()?;
                Some(None)
            }
        }
    }

    /// An attribute value, as `serde_dynamo` reads it: every type but the
    /// binary ones, strings without escapes.
    pub(super) fn value(&mut self, depth: u32) -> Option<AttributeValue> {
        self.byte(b'{')?;
        self.ws();
        let (tag, escaped) = self.name()?;
        if escaped {
            return None;
        }
        let value = match tag {
            "S" => AttributeValue::S(self.plain()?.to_owned()),
            "N" => AttributeValue::N(self.plain()?.to_owned()),
            "BOOL" => AttributeValue::Bool(self.boolean()?),
            "NULL" => AttributeValue::Null(self.boolean()?),
            "SS" => AttributeValue::Ss(self.strings()?),
            "NS" => AttributeValue::Ns(self.strings()?),
            "M" if depth < MAX_VALUE_DEPTH => AttributeValue::M(self.map(depth + 1)?),
            "L" if depth < MAX_VALUE_DEPTH => {
                let mut list = Vec::new();
                self.elements(|r| {
                    list.push(r.value(depth + 1)?);
                    Some(())
                })?;
                AttributeValue::L(list)
            }
            _ => return None,
        };
        self.ws();
        self.byte(b'}')?;
        Some(value)
    }

    fn strings(&mut self) -> Option<Vec<String>> {
        let mut strings = Vec::new();
        self.elements(|r| {
            strings.push(r.plain()?.to_owned());
            Some(())
        })?;
        Some(strings)
    }

    /// An object of attribute values.
    fn map(&mut self, depth: u32) -> Option<HashMap<String, AttributeValue>> {
        let from = self.members.len();
        let read = self.members(|r, name, escaped| {
            if escaped {
                return None;
            }
            let value = r.value(depth)?;
            r.members.push((name.to_owned(), value));
            Some(())
        });
        if read.is_none() {
            self.members.truncate(from);
            return None;
        }
        let mut map = HashMap::with_capacity(self.members.len() - from);
        map.extend(self.members.drain(from..));
        Some(map)
    }

    /// A whole item.
    pub(super) fn item(&mut self) -> Option<Item> {
        self.map(0).map(item_of)
    }
}

#[cfg(test)]
mod tests {
    use super::{string_stop, string_stop_8};

    /// Byte by byte: what both scans must find.
    fn first_stop(bytes: &[u8], mut at: usize) -> usize {
        while at < bytes.len() && !matches!(bytes[at], b'"' | b'\\' | 0..=0x1f) {
            at += 1;
        }
        at
    }

    #[test]
    fn the_scans_stop_where_byte_by_byte_does() {
        // Every byte value at every place of every length up to past two
        // blocks of 16, from every start: block edges, tails, no stop.
        for byte in 0..=255u8 {
            for len in 0..40 {
                for place in 0..len {
                    let mut text = vec![b'a'; len];
                    text[place] = byte;
                    for at in 0..=len {
                        let expected = first_stop(&text, at);
                        assert_eq!(
                            string_stop(&text, at),
                            expected,
                            "{byte} at {place} of {len}, from {at}"
                        );
                        assert_eq!(
                            string_stop_8(&text, at),
                            expected,
                            "{byte} at {place} of {len}, from {at}"
                        );
                    }
                }
            }
        }
    }
}

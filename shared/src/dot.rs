//! Regions and dots: the identity of one write.
//!
//! A dot is (Region, counter, nonce). The counter is consecutive along a
//! Region's chain of writes to one item; the random nonce tells apart two
//! writes that got the same counter on forked chains (the fork hazard in the
//! conflict model).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::StampError;

/// An AWS Region name such as `us-east-1`.
///
/// Only lower-case ASCII letters, digits and `-` are accepted, which keeps
/// the stamp's text encodings (`region:counter:nonce`) unambiguous.
/// Shared text: cloning a Region (done for every dot a merge copies) does
/// not allocate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Region(Arc<str>);

impl Region {
    /// Parses a Region name.
    ///
    /// # Errors
    /// [`StampError::BadRegion`] when the name is empty or has characters
    /// other than `a-z`, `0-9` and `-`.
    pub fn parse(name: &str) -> Result<Self, StampError> {
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Region(Arc::from(name)))
        } else {
            Err(StampError::BadRegion(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Region {
    type Err = StampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::parse(s)
    }
}

/// The highest dot counter a stamp may hold: 2^53 - 1, so that every
/// counter survives a JSON number round trip (JavaScript writers) and the
/// next write's `counter + 1` can never overflow. Larger counters are a
/// [`StampError::Overflow`] at decode.
pub const MAX_COUNTER: u64 = (1 << 53) - 1;

/// The position of a write on its Region's chain: counter and nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tick {
    pub counter: u64,
    pub nonce: u32,
}

impl Tick {
    /// `counter:nonce`, the nonce in base 36.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.counter, base36(self.nonce))
    }

    pub(crate) fn decode(text: &str) -> Result<Self, StampError> {
        let bad = || StampError::BadDot(text.to_owned());
        let (c, n) = text.split_once(':').ok_or_else(bad)?;
        let tick = Tick {
            counter: c.parse().map_err(|_| bad())?,
            nonce: u32::from_str_radix(n, 36).map_err(|_| bad())?,
        };
        check_counter(tick.counter)?;
        Ok(tick)
    }

    /// The tick that follows this one's counter on the chain (nonce 0).
    ///
    /// # Errors
    /// [`StampError::Overflow`] when the counter is at [`MAX_COUNTER`].
    pub fn next_counter(&self) -> Result<u64, StampError> {
        next_counter(self.counter)
    }
}

/// `counter + 1`, checked: never above [`MAX_COUNTER`].
///
/// # Errors
/// [`StampError::Overflow`] naming `counter`.
pub fn next_counter(counter: u64) -> Result<u64, StampError> {
    counter
        .checked_add(1)
        .filter(|next| *next <= MAX_COUNTER)
        .ok_or_else(|| StampError::overflow("counter", "the next dot counter would pass 2^53 - 1"))
}

/// Refuses a counter above [`MAX_COUNTER`].
pub(crate) fn check_counter(counter: u64) -> Result<u64, StampError> {
    if counter > MAX_COUNTER {
        Err(StampError::overflow(
            "counter",
            "a dot counter above 2^53 - 1",
        ))
    } else {
        Ok(counter)
    }
}

/// Keeps an overflow (it names a field); any other error becomes `bad`.
fn or_bad(e: StampError, bad: impl FnOnce() -> StampError) -> StampError {
    match e {
        StampError::Overflow { .. } => e,
        _ => bad(),
    }
}

/// One write: the Region that made it and its place on that Region's chain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    pub region: Region,
    pub tick: Tick,
}

impl Dot {
    pub fn new(region: Region, counter: u64, nonce: u32) -> Self {
        Dot {
            region,
            tick: Tick { counter, nonce },
        }
    }

    /// `region:counter:nonce`.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.region, self.tick.encode())
    }

    /// Parses `region:counter:nonce`.
    ///
    /// # Errors
    /// [`StampError::BadDot`] naming the text.
    pub fn decode(text: &str) -> Result<Self, StampError> {
        let (region, tick) = text
            .split_once(':')
            .ok_or_else(|| StampError::BadDot(text.to_owned()))?;
        let bad = || StampError::BadDot(text.to_owned());
        Ok(Dot {
            region: Region::parse(region).map_err(|_| bad())?,
            tick: Tick::decode(tick).map_err(|e| or_bad(e, bad))?,
        })
    }
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// A dot with the time its write was made (epoch ms): what a per-attribute
/// edit carries, since `lww` orders concurrent edits by time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimedDot {
    pub dot: Dot,
    pub time_ms: u64,
}

impl TimedDot {
    /// `region:counter:nonce:time_ms`.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.dot.encode(), self.time_ms)
    }

    /// # Errors
    /// [`StampError::BadDot`] naming the text.
    pub fn decode(text: &str) -> Result<Self, StampError> {
        let bad = || StampError::BadDot(text.to_owned());
        let (dot, time) = text.rsplit_once(':').ok_or_else(bad)?;
        Ok(TimedDot {
            dot: Dot::decode(dot).map_err(|e| or_bad(e, bad))?,
            time_ms: time.parse().map_err(|_| bad())?,
        })
    }

    /// The order `lww` uses: time first, then Region, counter and nonce so
    /// that every Region breaks ties the same way.
    pub fn lww_key(&self) -> (u64, &Region, u64, u32) {
        (
            self.time_ms,
            &self.dot.region,
            self.dot.tick.counter,
            self.dot.tick.nonce,
        )
    }
}

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n == 0 {
        return "0".into();
    }
    let mut out = Vec::with_capacity(7);
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).expect("base36 digits are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_round_trip() {
        let d = TimedDot {
            dot: Dot::new(Region::parse("us-east-1").unwrap(), 42, u32::MAX),
            time_ms: 1_764_000_000_123,
        };
        assert_eq!(d.encode(), "us-east-1:42:1z141z3:1764000000123");
        assert_eq!(TimedDot::decode(&d.encode()).unwrap(), d);
        assert_eq!(Dot::decode(&d.dot.encode()).unwrap(), d.dot);
    }

    #[test]
    fn counters_past_the_cap_are_an_overflow_not_a_bad_dot() {
        let ok = format!("us-east-1:{MAX_COUNTER}:a");
        assert_eq!(Dot::decode(&ok).unwrap().tick.counter, MAX_COUNTER);
        for counter in [MAX_COUNTER + 1, u64::MAX] {
            let err = Dot::decode(&format!("us-east-1:{counter}:a")).unwrap_err();
            assert!(matches!(err, StampError::Overflow { .. }), "{err:?}");
            let err = TimedDot::decode(&format!("us-east-1:{counter}:a:5")).unwrap_err();
            assert!(matches!(err, StampError::Overflow { .. }), "{err:?}");
        }
        assert_eq!(next_counter(MAX_COUNTER - 1), Ok(MAX_COUNTER));
        assert!(next_counter(MAX_COUNTER).is_err());
        assert!(next_counter(u64::MAX).is_err());
    }

    #[test]
    fn bad_text_is_named() {
        for bad in ["", "us-east-1", "us-east-1:x:1", "US:1:1", "us-east-1:1:!!"] {
            let err = Dot::decode(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert!(Region::parse("eu west").is_err());
    }
}

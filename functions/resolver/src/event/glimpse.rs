//! What triage reads of an image, straight from where the pass over the
//! event found it: the stamp's header fields, its known windows and the
//! home attribute, as slices of the image's text. Nothing is built unless
//! classification asks for it (the home attribute's value, a window).
//!
//! Only an image in the usual shape gets a glimpse: header fields that are
//! plain strings and numbers, and known windows that are a map of plain
//! strings. Any other image is read through its partial item instead
//! ([`Image::picked`]), and a glimpse answers every question exactly as
//! that item would ([`Glance`]); `triage_agrees` in the crate's tests and
//! the `event` fuzz target check it.

use homeward::classify::{header_of, window_knows, Glance, StampHeader};
use homeward::home::HomeStrategy;
use homeward::stamp::{decode_home_from, StampFields};
use homeward::{Dot, Home, StampError};
use serde_dynamo::AttributeValue;

use super::reader::Reader;
use super::{header_field, Found, Image, Kind};
use crate::lag;

/// An image's picked fields, unbuilt.
#[derive(Debug, Clone, Copy)]
pub struct Glimpse<'a> {
    text: &'a str,
    /// The stamp's header fields (in the order of `STAMP_HEADER_FIELDS`);
    /// `None` without a stamp attribute.
    stamp: Option<&'a [Option<Found>; 7]>,
    /// The home attribute: its name and where its value is.
    wanted: Option<(&'a str, Found)>,
}

/// Where `k`, the known windows, is among the header fields.
const KNOWN: usize = 4;

impl Image<'_> {
    /// A glimpse of the image for triage under `wanted` (the home
    /// attribute, if any) and `stamp_attribute`; `None` when the pass did
    /// not pick those, or the image is not in the usual shape.
    pub fn glimpse(&self, wanted: &[&str], stamp_attribute: &str) -> Option<Glimpse<'_>> {
        let (pick, picks) = self.picked.as_ref()?;
        if !pick.is(wanted, stamp_attribute) {
            return None;
        }
        let text: &str = &self.text;
        let wanted = match (pick.wanted.first(), picks.wanted[0]) {
            (_, None) => None,
            (Some(name), Some(found)) if found.kind != Kind::Value => Some((name.as_str(), found)),
            _ => return None,
        };
        if let Some(fields) = &picks.stamp {
            for (i, found) in fields.iter().enumerate() {
                match found {
                    Some(f) if i == KNOWN && f.kind == Kind::Value => {
                        windows(f.text(text)?, |_, _| ())?;
                    }
                    Some(f) if f.kind == Kind::Value => return None,
                    _ => {}
                }
            }
        }
        Some(Glimpse {
            text,
            stamp: picks.stamp.as_ref(),
            wanted,
        })
    }
}

impl Found {
    fn text(self, image: &str) -> Option<&str> {
        image.get(self.start as usize..self.end as usize)
    }
}

/// Walks the known windows' value, `{"M": {"<Region>": {"S": "<ticks>"},
/// ...}}`, handing each Region and window to `each`; `None` when it is not
/// in that shape with plain strings.
fn windows<'a>(value: &'a str, mut each: impl FnMut(&'a str, &'a str)) -> Option<()> {
    let mut r = Reader::new(value);
    r.ws();
    r.byte(b'{')?;
    r.ws();
    if r.name()? != ("M", false) {
        return None;
    }
    r.members(|r, region, escaped| {
        if escaped {
            return None;
        }
        r.byte(b'{')?;
        r.ws();
        if r.name()? != ("S", false) {
            return None;
        }
        each(region, r.plain()?);
        r.ws();
        r.byte(b'}')
    })?;
    r.ws();
    r.byte(b'}')?;
    r.end()
}

/// A stamp's header fields read from an image's text.
pub(super) trait HeaderText {
    /// A field's kind and its text (`None` for a text out of the image);
    /// `None` when the field is missing.
    fn field(&self, name: &str) -> Option<(Kind, Option<&str>)>;
}

impl<T: HeaderText> HeaderText for &T {
    fn field(&self, name: &str) -> Option<(Kind, Option<&str>)> {
        (**self).field(name)
    }
}

/// Header fields read from text, answering as the stamp's map would.
pub(super) struct Fields<T>(pub(super) T);

impl<T: HeaderText> Fields<T> {
    fn kind(&self, field: &str, kind: Kind, not: &'static str) -> Result<&str, StampError> {
        match self.0.field(field) {
            Some((k, text)) if k == kind => {
                text.ok_or_else(|| StampError::field(field, "out of the image"))
            }
            Some(_) => Err(StampError::field(field, not)),
            None => Err(StampError::field(field, "missing")),
        }
    }
}

impl<T: HeaderText> StampFields for Fields<T> {
    fn has(&self, field: &str) -> bool {
        self.0.field(field).is_some()
    }

    fn string(&self, field: &str) -> Result<&str, StampError> {
        self.kind(field, Kind::S, "not a string")
    }

    fn number_text(&self, field: &str) -> Result<&str, StampError> {
        self.kind(field, Kind::N, "not a number")
    }

    /// Only the header fields are read from the text (not `m`, pending
    /// moves): any other field is missing, as in the partial item. (An
    /// image whose stamp has `m` is not read to a version from its text.)
    fn value(&self, _field: &str) -> Option<&AttributeValue> {
        None
    }
}

/// The stamp's header fields where the pass found them.
struct Header<'g, 'a>(&'g Glimpse<'a>, &'a [Option<Found>; 7]);

impl Header<'_, '_> {
    fn found(&self, field: &str) -> Option<Found> {
        let i = header_field(field)?;
        self.1[i]
    }
}

impl HeaderText for Header<'_, '_> {
    fn field(&self, name: &str) -> Option<(Kind, Option<&str>)> {
        self.found(name).map(|f| (f.kind, f.text(self.0.text)))
    }
}

impl<'a> Glimpse<'a> {
    fn header_fields(&self) -> Option<Fields<Header<'_, 'a>>> {
        self.stamp.map(|fields| Fields(Header(self, fields)))
    }

    /// The copy's origin and time, for the replication lag (as
    /// [`lag::Written::of`] reads them).
    pub fn written(&self) -> Option<lag::Written> {
        let header = self.header_fields()?;
        lag::Written::from_text(header.string("o").ok()?, header.number_text("t").ok()?)
    }

    fn wanted_value(&self) -> Option<(&'a str, AttributeValue)> {
        let (name, found) = self.wanted?;
        let text = found.text(self.text)?.to_owned();
        Some((
            name,
            match found.kind {
                Kind::N => AttributeValue::N(text),
                _ => AttributeValue::S(text),
            },
        ))
    }
}

impl Glance for Glimpse<'_> {
    fn header(&self, _stamp_attribute: &str) -> Result<Option<StampHeader>, StampError> {
        self.header_fields().map(|h| header_of(&h)).transpose()
    }

    fn knows(&self, _stamp_attribute: &str, dot: &Dot) -> Result<bool, StampError> {
        let Some(header) = self.header_fields() else {
            return Ok(false);
        };
        let missing = || StampError::field("k", "missing or not a map");
        let known = header.0.found("k").ok_or_else(missing)?;
        if known.kind != Kind::Value {
            return Err(missing());
        }
        // The last of a Region's windows, as a map built from the text keeps.
        let mut window = None;
        windows(known.text(self.text).ok_or_else(missing)?, |region, w| {
            if region == dot.region.as_str() {
                window = Some(w);
            }
        })
        .ok_or_else(missing)?;
        window.map_or(Ok(false), |w| window_knows(w, dot))
    }

    fn home(&self, homes: &HomeStrategy) -> Result<Option<Home>, String> {
        let wanted = self.wanted_value();
        homes.home_from(
            || match self.header_fields() {
                Some(h) => decode_home_from(&h).map_err(|e| e.to_string()),
                None => Ok(None),
            },
            |name| match &wanted {
                Some((n, value)) if *n == name => Some(value),
                _ => None,
            },
        )
    }

    /// A glimpse holds no data beyond the home attribute: it cannot tell.
    fn same_data(&self, _other: &Self, _stamp_attribute: &str) -> bool {
        true
    }
}

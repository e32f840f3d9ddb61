//! The one pass over the event's envelope: its records and their changes,
//! and in each image where the values triage reads are.

use std::borrow::Cow;
use std::sync::Arc;

use super::reader::Reader;
use super::{
    header_field, Change, Found, Image, Kind, Pick, Picks, StreamEvent, StreamRecord, MAX_WANTED,
};

/// Sets `slot` once: a field twice is not the usual shape (serde rejects a
/// duplicate field, or keeps the last: the pass leaves either to it).
pub(super) fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

impl<'a> Reader<'a> {
    pub(super) fn event(&mut self, pick: &Arc<Pick>) -> Option<StreamEvent<'a>> {
        let mut records = None;
        self.ws();
        self.members(|r, name, escaped| match (name, escaped) {
            ("Records", false) => once(&mut records, r.records(pick)?),
            (_, false) => r.skip(),
            (_, true) => None,
        })?;
        self.end()?;
        Some(StreamEvent { records: records? })
    }

    fn records(&mut self, pick: &Arc<Pick>) -> Option<Vec<StreamRecord<'a>>> {
        let mut records = Vec::new();
        self.elements(|r| {
            records.push(r.record(pick)?);
            Some(())
        })?;
        Some(records)
    }

    fn record(&mut self, pick: &Arc<Pick>) -> Option<StreamRecord<'a>> {
        let (mut event_name, mut aws_region, mut user_identity, mut change) =
            (None, None, None, None);
        self.members(|r, name, escaped| match (name, escaped) {
            ("eventName", false) => once(&mut event_name, r.string()?),
            ("awsRegion", false) => once(&mut aws_region, r.string()?),
            ("userIdentity", false) => once(&mut user_identity, r.decoded()?),
            ("dynamodb", false) => once(&mut change, r.change(pick)?),
            (_, false) => r.skip(),
            (_, true) => None,
        })?;
        Some(StreamRecord {
            event_name: event_name?,
            aws_region: aws_region.unwrap_or_default(),
            user_identity: user_identity.flatten(),
            dynamodb: change?,
        })
    }

    fn change(&mut self, pick: &Arc<Pick>) -> Option<Change<'a>> {
        let (mut keys, mut new_image, mut old_image) = (None, None, None);
        let (mut sequence_number, mut time) = (None, None);
        self.members(|r, name, escaped| match (name, escaped) {
            ("Keys", false) => {
                let start = r.at;
                let read = match r.item() {
                    Some(item) => item,
                    None => {
                        r.at = start;
                        r.decoded()?
                    }
                };
                once(&mut keys, read)
            }
            ("NewImage", false) => once(&mut new_image, r.image(pick)?),
            ("OldImage", false) => once(&mut old_image, r.image(pick)?),
            ("SequenceNumber", false) => {
                let sequence = if r.null() { None } else { Some(r.string()?) };
                once(&mut sequence_number, sequence)
            }
            ("ApproximateCreationDateTime", false) => {
                let seconds = match r.whole_seconds() {
                    Some(seconds) => Some(seconds),
                    None => r.decoded()?,
                };
                once(&mut time, seconds)
            }
            (_, false) => r.skip(),
            (_, true) => None,
        })?;
        Some(Change {
            keys: keys.unwrap_or_default(),
            new_image: new_image.flatten(),
            old_image: old_image.flatten(),
            sequence_number: sequence_number.flatten(),
            approximate_creation_date_time: time.flatten(),
        })
    }

    fn image(&mut self, pick: &Arc<Pick>) -> Option<Option<Image<'a>>> {
        if self.null() {
            return Some(None);
        }
        let start = self.at;
        let picks = if self.peek() == Some(b'{') && pick.wanted.len() <= MAX_WANTED {
            self.picks(pick, start)?
        } else {
            // Not an item (triage names the error), or more to pick than
            // the pass notes: triage reads the text.
            self.skip()?;
            None
        };
        Some(Some(Image {
            text: Cow::Borrowed(&self.text[start..self.at]),
            picked: picks.map(|p| (Arc::clone(pick), p)),
        }))
    }

    /// Where the stamp's header fields and the wanted attributes are in the
    /// image whose `{` is next; `Some(None)` when the image is not in the
    /// shape this reads (triage then reads its text).
    fn picks(&mut self, pick: &Pick, image: usize) -> Option<Option<Picks>> {
        let mut picks = Picks {
            stamp: None,
            wanted: [None; MAX_WANTED],
        };
        let mut usual = true;
        self.members(|r, name, escaped| {
            if escaped {
                usual = false;
                r.skip()
            } else if name == pick.stamp_attribute {
                match r.attempt(|r| r.stamp(image))? {
                    // A name twice is not the usual shape: serde decides.
                    Some(_) if picks.stamp.is_some() => usual = false,
                    Some(fields) => picks.stamp = Some(fields),
                    None => usual = false,
                }
                Some(())
            } else if let Some(i) = pick.wanted.iter().position(|w| w == name) {
                match r.found(image)? {
                    Some(_) if picks.wanted[i].is_some() => usual = false,
                    Some(found) => picks.wanted[i] = Some(found),
                    None => usual = false,
                }
                Some(())
            } else {
                r.skip()
            }
        })?;
        Some(usual.then_some(picks))
    }

    /// A stamp, `{"M": {...}}`: where its header fields are.
    fn stamp(&mut self, image: usize) -> Option<[Option<Found>; 7]> {
        let mut fields = [None; 7];
        self.byte(b'{')?;
        self.ws();
        if self.name()? != ("M", false) {
            return None;
        }
        self.members(|r, name, escaped| {
            if escaped {
                return None;
            }
            match header_field(name) {
                // A field twice: not the usual shape (serde decides).
                Some(i) if fields[i].is_some() => return None,
                Some(i) => fields[i] = Some(r.found(image)??),
                None => r.skip()?,
            }
            Some(())
        })?;
        self.ws();
        self.byte(b'}')?;
        Some(fields)
    }

    /// An attribute value found in the image that starts at `image`, not
    /// built: where a string's or a number's text is, else the value's.
    /// `Some(None)` past an image too long for the offsets.
    fn found(&mut self, image: usize) -> Option<Option<Found>> {
        let start = self.at;
        let simple = self.attempt(|r| {
            r.byte(b'{')?;
            r.ws();
            let kind = match r.name()? {
                ("S", false) => Kind::S,
                ("N", false) => Kind::N,
                _ => return None,
            };
            let at = r.at + 1;
            let text = r.plain()?;
            r.ws();
            r.byte(b'}')?;
            Some((kind, at, at + text.len()))
        })?;
        let (kind, start, end) = simple.unwrap_or((Kind::Value, start, self.at));
        let offset = |at: usize| u32::try_from(at - image).ok();
        Some(
            offset(start)
                .zip(offset(end))
                .map(|(start, end)| Found { kind, start, end }),
        )
    }
}

//! Triage: what a record is (its class), read from the stamp headers and
//! the home attribute the pass over the event picked, and the whole images
//! of the records whose action reads items; a foreign write's versions are
//! read straight from its images ([`version_of`]). Pure.

use homeward::adopt::adopt;
use homeward::classify::{classify, Class, ClassifyError, EventKind, Glance};
use homeward::Version;
use serde_dynamo::Item;

use crate::{event, lag, Config, RecordError, StreamRecord};

/// A classified record, with its images decoded whole when its action
/// reads them as items. A foreign write's are not: the resolver reads its
/// versions straight from the images ([`version_of`]).
#[derive(Debug)]
pub struct Triaged {
    pub class: Class,
    pub new: Option<Item>,
    pub old: Option<Item>,
    /// A copy replication brought here: where and when it was written
    /// (the replication lag's sample).
    pub copy: Option<lag::Written>,
}

/// Classifies a record from its stamps and home attribute alone (what the
/// pass over the event picked), and decodes the whole images only when the
/// record's action reads them as items (not a foreign write's). Pure.
///
/// # Errors
/// [`RecordError`] naming what is malformed.
pub fn triage(c: &Config, record: &StreamRecord) -> Result<Triaged, RecordError> {
    triage_reading(c, record, true)
}

/// [`triage`], reading what classification needs through glimpses of the
/// images (`glimpses`, when both images have one) or through their
/// partial items: the two answer alike (`triage_agrees`).
fn triage_reading(
    c: &Config,
    record: &StreamRecord,
    glimpses: bool,
) -> Result<Triaged, RecordError> {
    let kind = EventKind::parse(&record.event_name)?;
    let ttl = record.is_ttl_delete();
    let change = &record.dynamodb;
    fn classify_with<G: Glance>(
        c: &Config,
        kind: EventKind,
        ttl: bool,
        new: Option<&G>,
        old: Option<&G>,
    ) -> Result<Class, ClassifyError> {
        classify(
            &c.region,
            kind,
            ttl,
            new,
            old,
            &c.schema.stamp_attribute,
            &c.homes,
        )
    }
    // The lag is sampled from copies replication brought here.
    let sampled = |class: &Class| matches!(class, Class::Replicated | Class::Echo);
    let glimpsed = if glimpses {
        glimpse(c, change.new_image.as_ref()).zip(glimpse(c, change.old_image.as_ref()))
    } else {
        None
    };
    let (class, copy) = if let Some((new, old)) = glimpsed {
        let class = classify_with(c, kind, ttl, new.as_ref(), old.as_ref())?;
        let copy = new.filter(|_| sampled(&class)).and_then(|n| n.written());
        (class, copy)
    } else {
        let (new, old) = (
            picked(c, change.new_image.as_ref(), "new")?,
            picked(c, change.old_image.as_ref(), "old")?,
        );
        let class = classify_with(c, kind, ttl, new.as_ref(), old.as_ref())?;
        let copy = new
            .filter(|_| sampled(&class))
            .and_then(|n| lag::Written::of(&n, &c.schema.stamp_attribute));
        (class, copy)
    };
    if matches!(
        class,
        Class::Replicated
            | Class::Echo
            | Class::HomeWrite
            | Class::TtlDelete
            | Class::Foreign { .. }
    ) {
        return Ok(Triaged {
            class,
            new: None,
            old: None,
            copy,
        });
    }
    // This record needs action (or a closer look): decode it whole.
    let (new, old) = (
        full(change.new_image.as_ref(), "new")?,
        full(change.old_image.as_ref(), "old")?,
    );
    let class = if class == Class::NoOp {
        // Equal stamps: only the whole images tell a no-op from a write
        // that left a stale stamp.
        classify_with(c, kind, ttl, new.as_ref(), old.as_ref())?
    } else {
        class
    };
    Ok(Triaged {
        class,
        new,
        old,
        copy: None,
    })
}

/// The version an image holds, as the resolver merges it: read straight
/// from the image's text when it is in the usual shape and its stamp
/// accounts for every attribute ([`event::Image::version`]), else decoded
/// from its whole item, with what a plain writer changed taken in
/// (`adopt`). `None` without the image.
///
/// # Errors
/// [`RecordError`] naming what is malformed.
pub fn version_of(
    c: &Config,
    image: Option<&event::Image>,
    which: &'static str,
) -> Result<Option<Version>, RecordError> {
    let Some(image) = image else {
        return Ok(None);
    };
    if let Some(version) = image.version(&c.schema) {
        return Ok(Some(version));
    }
    let item = image.whole().map_err(|e| RecordError::image(which, &e))?;
    Ok(Some(
        adopt(&c.schema, &c.merger.rules, &item, None)?.version,
    ))
}

/// Whether triage reads `record` alike through glimpses and through
/// partial items (the test and the `event` fuzz target check every
/// record they see).
pub fn triage_agrees(c: &Config, record: &StreamRecord) -> bool {
    match (
        triage_reading(c, record, true),
        triage_reading(c, record, false),
    ) {
        (Ok(a), Ok(b)) => {
            a.class == b.class && a.new == b.new && a.old == b.old && a.copy == b.copy
        }
        (Err(a), Err(b)) => a.to_string() == b.to_string(),
        _ => false,
    }
}

/// A glimpse of an image for triage: `Some(None)` without the image,
/// `None` when it has no glimpse (its partial item is read instead).
fn glimpse<'i>(c: &Config, image: Option<&'i event::Image>) -> Option<Option<event::Glimpse<'i>>> {
    match image {
        None => Some(None),
        Some(i) => i
            .glimpse(c.homes.attribute().as_slice(), &c.schema.stamp_attribute)
            .map(Some),
    }
}

/// What triage reads of an image: the stamp's header and the home
/// attribute.
pub(crate) fn picked(
    c: &Config,
    image: Option<&event::Image>,
    which: &'static str,
) -> Result<Option<Item>, RecordError> {
    image
        .map(|i| i.picked(c.homes.attribute().as_slice(), &c.schema.stamp_attribute))
        .transpose()
        .map_err(|e| RecordError::image(which, &e))
}

/// A whole image of a record, decoded.
pub(crate) fn full(
    image: Option<&event::Image>,
    which: &'static str,
) -> Result<Option<Item>, RecordError> {
    image
        .map(event::Image::whole)
        .transpose()
        .map_err(|e| RecordError::image(which, &e))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::StreamEvent;

    /// The pure_path bench's configuration: homes by `home_region`.
    fn config() -> Config {
        Config::for_stream_batch("T", "J")
    }

    /// Each record of `event`: whether its images have glimpses, and that
    /// triage reads it alike through them and through partial items.
    fn check(c: &Config, event: &Value) -> Vec<(bool, bool)> {
        check_text(c, &event.to_string())
    }

    fn check_text(c: &Config, text: &str) -> Vec<(bool, bool)> {
        let event = StreamEvent::parse(text, c).unwrap();
        event
            .records
            .iter()
            .map(|r| {
                assert!(triage_agrees(c, r), "{:?}", triage(c, r));
                let has = |i: Option<&event::Image>| matches!(glimpse(c, i), Some(Some(_)));
                (
                    has(r.dynamodb.new_image.as_ref()),
                    has(r.dynamodb.old_image.as_ref()),
                )
            })
            .collect()
    }

    #[test]
    fn a_batch_is_read_through_glimpses_alike() {
        let c = config();
        let batch = homeward::fixtures::stream_batch(0..100);
        assert!(check(&c, &batch).iter().all(|&g| g == (true, true)));
        // And every class the batch holds came out of them.
        let text = batch.to_string();
        let event = StreamEvent::parse(&text, &c).unwrap();
        let classes: std::collections::BTreeSet<_> = event
            .records
            .iter()
            .map(|r| triage(&c, r).unwrap().class.name())
            .collect();
        assert_eq!(
            classes.into_iter().collect::<Vec<_>>(),
            ["foreign", "home-write", "replicated"]
        );
    }

    /// Malformed header fields, windows and home attributes, in either
    /// image: a glimpse fails (or classifies) exactly as the item does.
    #[test]
    fn malformed_stamps_and_homes_read_alike() {
        let c = config();
        // 0: a foreign write; 1: a home write; 5: a replicated one.
        let batch = homeward::fixtures::stream_batch(0..6);
        let stamp_cases = [
            ("o", Some(json!({"S": "mars-north-9"}))),
            ("o", Some(json!({"N": "1"}))),
            ("o", None),
            ("t", Some(json!({"N": "1.5"}))),
            ("t", Some(json!({"S": "1"}))),
            ("t", None),
            ("by", Some(json!({"S": "robot"}))),
            ("dot", Some(json!({"S": "us-west-2:1:abc"}))),
            ("dot", Some(json!({"S": "nonsense"}))),
            ("k", Some(json!({"M": {"us-east-1": {"S": "x:y"}}}))),
            ("k", Some(json!({"M": {}}))),
            ("k", Some(json!({"S": "us-east-1"}))),
            ("k", None),
            ("h", Some(json!({"S": "us-west-2"}))),
            ("h", Some(json!({"S": "nowhere"}))),
            ("e", Some(json!({"N": "-1"}))),
            ("e", Some(json!({"N": "1"}))),
            ("by", Some(json!({"NULL": true}))),
        ];
        let home_cases = [
            Some(json!({"N": "1"})),
            Some(json!({"S": "nowhere"})),
            Some(json!({"S": "eu-west-1"})),
            None,
        ];
        let mut glimpsed = 0;
        for i in [0, 1, 5] {
            for image in ["NewImage", "OldImage"] {
                let edit = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
                    let mut record = batch["Records"][i].clone();
                    f(record["dynamodb"][image].as_object_mut().unwrap());
                    json!({ "Records": [record] })
                };
                for (field, value) in &stamp_cases {
                    let event = edit(&|item| {
                        let stamp = item["_hw"]["M"].as_object_mut().unwrap();
                        match value {
                            Some(v) => stamp.insert((*field).into(), v.clone()),
                            None => stamp.remove(*field),
                        };
                    });
                    let (new, old) = check(&c, &event)[0];
                    glimpsed += usize::from(new && old);
                }
                for value in &home_cases {
                    let event = edit(&|item| {
                        match value {
                            Some(v) => item.insert("home_region".into(), v.clone()),
                            None => item.remove("home_region"),
                        };
                    });
                    let (new, old) = check(&c, &event)[0];
                    glimpsed += usize::from(new && old);
                }
            }
        }
        // Escaped strings are not in the usual shape: read as items, alike.
        for (plain, escaped) in [
            (r#""o":{"S":"us-east-1"}"#, r#""o":{"S":"us-east-\u0031"}"#),
            (r#""by":{"S":"app"}"#, r#""by":{"S":"ap\u0070"}"#),
            (
                r#""dot":{"S":"us-west-2:1:0"}"#,
                r#""dot":{"S":"us-west-2:1:\u0030"}"#,
            ),
            (
                r#""us-west-2":{"S":"1:0"}"#,
                r#""us-west-2":{"S":"1:\u0030"}"#,
            ),
        ] {
            let text = batch.to_string();
            assert!(text.contains(plain), "{plain}");
            let read = check_text(&c, &text.replace(plain, escaped));
            assert!(read.iter().any(|&(new, old)| !new || !old), "{escaped}");
        }
        // Everything but the odd-shaped fields (a number for a home, a
        // string for the windows) is read through glimpses.
        assert!(glimpsed >= 6 * 18, "only {glimpsed} cases were glimpsed");
    }
}

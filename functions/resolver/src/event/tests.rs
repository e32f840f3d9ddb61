use super::*;
use rand::{Rng, SeedableRng};

fn pick() -> Arc<Pick> {
    Arc::new(Pick::new(&["src_region"], "_hw"))
}

fn sample(name: &str) -> String {
    let path = format!("{}/../../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const SAMPLES: &[&str] = &[
    "clobber",
    "echo",
    "foreign-write",
    "hard-delete",
    "home-write",
    "malformed",
    "replicated",
    "ttl-delete",
    "unattributed",
];

#[test]
fn partial_images_hold_only_what_is_asked() {
    let text = r#"{"a":{"S":"x"},"b\u0020":{"N":"1"},"_hw":{"M":{"o":{"S":"us-east-1"}}},"c":{"L":[{"S":"y"}]}}"#;
    let item = partial_image(text, &["b "], "_hw").unwrap();
    let image = Image {
        text: Cow::Borrowed(text),
        picked: None,
    };
    assert_eq!(image.picked(&["b "], "_hw").unwrap(), item);
    assert_eq!(item.len(), 2);
    let AttributeValue::M(stamp) = &item["_hw"] else {
        panic!()
    };
    assert_eq!(stamp.get("o"), Some(&AttributeValue::S("us-east-1".into())));
    assert_eq!(item.get("b "), Some(&AttributeValue::N("1".into())));
    assert_eq!(full_image(text).unwrap().len(), 4);
    assert!(partial_image(r#"{"_hw":{"Q":1}}"#, &[], "_hw").is_err());
}

#[test]
fn the_pass_reads_the_samples_in_one_go_as_serde_does() {
    for name in SAMPLES {
        let text = sample(name);
        assert_eq!(pass_agrees(&text, &pick()), Some(true), "{name}");
        let event = Reader::new(&text)
            .event(&pick())
            .unwrap_or_else(|| panic!("{name}: the pass gave up"));
        for r in &event.records {
            for image in [&r.dynamodb.new_image, &r.dynamodb.old_image]
                .into_iter()
                .flatten()
            {
                // Stamps and homes in their usual shapes: found on the
                // way, and built from what was found.
                let (by, picks) = image.picked.as_ref().unwrap();
                let item = picks.item(by, image.text());
                assert!(item.is_some(), "{name}: {}", image.text());
                assert_eq!(
                    item,
                    partial_image(image.text(), &["src_region"], "_hw").ok()
                );
                let mut whole = Reader::new(image.text());
                assert!(whole.item().is_some(), "{name}: {}", image.text());
            }
        }
    }
}

#[test]
fn what_the_pass_does_not_read_is_read_as_serde_reads_it() {
    let image = r#"{"_hw":{"M":{"o":{"S":"us-east-1"},"t":{"N":"1"},"d":{"M":{"x":{"SS":["a"]}}}}},"src_region":{"S":"us-west-1"},"a":{"L":[1,2.5e-3,true,false,null,{},[]]}}"#;
    let event = |change: &str| {
        format!(
            r#"{{"Records":[{{"eventName":"MODIFY","awsRegion":"us-east-1","dynamodb":{{{change}}}}}]}}"#
        )
    };
    let with_images = |new: &str| {
        event(&format!(
            r#""Keys":{{"pk":{{"S":"k"}}}},"NewImage":{new},"OldImage":{image},"SequenceNumber":"1","ApproximateCreationDateTime":1764000000.5"#
        ))
    };
    let cases = [
        // Images the pass picks from, or leaves to triage.
        with_images(image),
        with_images("null"),
        with_images(r#""text""#),
        with_images("[1,2]"),
        with_images("{}"),
        with_images(r#"{"_hw":{"S":"x"}}"#),
        with_images(r#"{"_hw":{"M":{}, "S":"x"}}"#),
        with_images(r#"{"_hw":{"M":{"o":{"SS":["a"]}}}}"#),
        with_images(r#"{"_hw":{"M":{"o":{"S":"a","N":"1"}}}}"#),
        with_images(r#"{"_hw":{"M":{"o":{"Q":"a"}}}}"#),
        with_images(r#"{"_hw":{"M":{"o":{"S":"a\"b"}}}}"#),
        with_images(r#"{"_hw":{"M":{"o":{"S":"\u00e9"}}}}"#),
        with_images(r#"{"_h\u0077":{"M":{"o":{"S":"x"}}}}"#),
        with_images(r#"{"src_region":{"S":"a"},"src_region":{"N":"1"}}"#),
        with_images(r#"{"src_region":{"B":"aGk="}}"#),
        with_images(r#"{"src_region":{"M":{"a":{"M":{"b":{"M":{}}}}}}}"#),
        with_images(r#"{"x":"\ud800"}"#),
        with_images(r#"{"\ud800":1}"#),
        with_images(r#" { "_hw" : { "M" : { "o" : { "S" : "é" } } } } "#),
        with_images(&format!("{}1{}", "[".repeat(200), "]".repeat(200))),
        // Whole images of every type.
        with_images(
            r#"{"a":{"BOOL":true},"b":{"NULL":true},"c":{"L":[{"S":"x"},{"N":"1"},{"L":[]}]},"d":{"SS":["x","y"]},"e":{"NS":["1"]},"f":{"M":{}}}"#,
        ),
        with_images(r#"{"a":{"B":"aGk="},"b":{"BS":["aGk="]}}"#),
        with_images(r#"{"a":{"B":"not base64"}}"#),
        with_images(r#"{"a":{"BOOL":"true"}}"#),
        with_images(r#"{"a":{"NULL":null}}"#),
        with_images(r#"{"a":{"SS":["x	y"]}}"#),
        with_images(r#"{"a":{"SS":null}}"#),
        with_images(r#"{"a":{}}"#),
        with_images(r#"{"a":{"S":"x"},"a":{"N":"2"}}"#),
        with_images(&format!(
            r#"{{"src_region":{}{{"S":"x"}}{}}}"#,
            r#"{"L":["#.repeat(40),
            "]}".repeat(40)
        )),
        with_images(&format!(
            r#"{{"a":{}{{"S":"x"}}{}}}"#,
            r#"{"M":{"m":"#.repeat(70),
            "}}".repeat(70)
        )),
        // Envelopes the pass leaves to serde.
        event(r#""Keys":{"pk":{"S":"a"}},"Keys":{}"#),
        event(r#""Keys":{"pk":{"B":"aGk="}}"#),
        event(r#""Keys":null"#),
        event(r#""Keys":{"pk":{"S":"a\u0000"}}"#),
        event(r#""SequenceNumber":null,"ApproximateCreationDateTime":null"#),
        event(r#""SequenceNumber":1"#),
        event(r#""SequenceNumber":"a\nb""#),
        event(r#""ApproximateCreationDateTime":"1""#),
        event(r#""ApproximateCreationDateTime":1e999"#),
        event(r#""ApproximateCreationDateTime":-0.0e+1"#),
        // Whole seconds read without serde, and what they leave to it.
        event(r#""ApproximateCreationDateTime":1764000000"#),
        event(r#""ApproximateCreationDateTime":0"#),
        event(r#""ApproximateCreationDateTime":-0"#),
        event(r#""ApproximateCreationDateTime":00"#),
        event(r#""ApproximateCreationDateTime":999999999999999"#),
        event(r#""ApproximateCreationDateTime":9007199254740993"#),
        event(r#""ApproximateCreationDateTime":1764000000e0"#),
        event(r#""ApproximateCreationDateTime":1764000000 "#),
        event(r#""ApproximateCreationDateTime":1764000000x"#),
        event(r#""NewI\u006dage":{}"#),
        event(r#""NewImage":{},"NewImage":{}"#),
        event(r#""NewImage":nul"#),
        event(r#""NewImage":{"a":01}"#),
        event(r#""NewImage":{"a":1.}"#),
        event(r#""NewImage":{"a":"\x"}"#),
        event(r#""NewImage":{"a":"x	y"}"#),
        event(r#""NewImage":{"a":[1,]}"#),
        // Strings in a row (read without the general walk), then anything.
        event(r#""NewImage":{"a":["x","y"],"b":[ "x" , "y" ],"c":["x",1,"y"]}"#),
        event(r#""NewImage":{"a":["x",["y","z"],{"S":"w"},"v"]}"#),
        event(r#""NewImage":{"a":[1,"x"],"b":[["x"],"y"]}"#),
        event(r#""NewImage":{"a":["x",]}"#),
        event(r#""NewImage":{"a":["x" "y"]}"#),
        event(r#""NewImage":{"a":["x","y\"]}"#),
        event(r#""NewImage":{"a":["x","y"}"#),
        event(r#""NewImage":{"a":["x","#),
        event(r#""NewImage":{"a":{,}}"#),
        event(r#""NewImage":{"a":1,}"#),
        event(r#""NewImage":{"a":tru}"#),
        event(r#""NewImage":{"a":[{"S":"x"}{}]}"#),
        event(r#""NewImage":{"a":[{"S":"x"},{"S":"y" , "N":"1"}]}"#),
        event(r#""NewImage":{"a":{"S":"x"]}"#),
        event(r#""NewImage":{"a":{"S":"x"}"#),
        event(r#""NewImage":{"a":{"S":"x\"}}"#),
        r#"{"Records":[{"eventName":"INSERT","dynamodb":{},"userIdentity":{"type":"Service","principalId":"dynamodb.amazonaws.com"}}]}"#.into(),
        r#"{"Records":[{"eventName":"INSERT","dynamodb":{},"userIdentity":null}]}"#.into(),
        r#"{"Records":[{"eventName":"INSERT","dynamodb":{},"userIdentity":[]}]}"#.into(),
        r#"{"Records":[{"eventName":"INS\u0045RT","dynamodb":{}}]}"#.into(),
        r#"{"Records":[{"eventName":"INSERT","awsRegion":null,"dynamodb":{}}]}"#.into(),
        r#"{"Records":[{"eventName":"INSERT"}]}"#.into(),
        r#"{"Records":[{"dynamodb":{}}]}"#.into(),
        r#"{"Records":[["INSERT","us-east-1",null,{}]]}"#.into(),
        r#"{"Records":[]} "#.into(),
        r#"{"Records":[]} x"#.into(),
        r#"{"Records":[],"Records":[]}"#.into(),
        r#"{"Records":null}"#.into(),
        r#"{"other":1}"#.into(),
        r#"[[]]"#.into(),
        "".into(),
    ];
    for text in &cases {
        assert_ne!(pass_agrees(text, &pick()), Some(false), "{text}");
    }
    // The usual image is picked on the way; an odd one is read from its
    // text as before.
    let picked = |text: &str| {
        let event = StreamEvent::parse_picking(text, &pick()).unwrap();
        let image = event.records[0].dynamodb.new_image.clone().unwrap();
        image.picked.is_some()
    };
    assert!(picked(&cases[0]));
    assert!(!picked(&cases[12]));
}

#[test]
fn mangled_events_read_as_serde_reads_them() {
    // Cheap fuzzing: random edits of the samples, with characters that
    // matter to JSON.
    const ALPHABET: &[u8] = b"{}[]\",:\\ 0123456789.eE+-tfnulrsaSNMu\n\x01";
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let mut agreed = 0;
    for name in SAMPLES {
        let original = sample(name).into_bytes();
        for _ in 0..300 {
            let mut bytes = original.clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..bytes.len());
                let c = ALPHABET[rng.random_range(0..ALPHABET.len())];
                match rng.random_range(0..3) {
                    0 => bytes[at] = c,
                    1 => bytes.insert(at, c),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            let verdict = pass_agrees(text, &pick());
            assert_ne!(verdict, Some(false), "{text}");
            agreed += usize::from(verdict == Some(true));
        }
    }
    // Many edits leave a readable event (inside strings, mostly).
    assert!(agreed > 300, "{agreed}");
}

#[test]
fn owned_events_keep_what_was_picked() {
    let text = sample("foreign-write");
    let event = StreamEvent::parse_picking(&text, &pick()).unwrap();
    let owned = event.clone().into_owned();
    assert_eq!(
        owned.records[0].dynamodb.keys,
        event.records[0].dynamodb.keys
    );
    let (a, b) = (&owned.records[0].dynamodb, &event.records[0].dynamodb);
    let (a, b) = (a.new_image.as_ref().unwrap(), b.new_image.as_ref().unwrap());
    assert_eq!(a.text(), b.text());
    assert_eq!(
        a.picked(&["src_region"], "_hw").unwrap(),
        b.picked(&["src_region"], "_hw").unwrap()
    );
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let from_value = StreamEvent::from_value(&value).unwrap();
    assert_eq!(from_value.records.len(), 1);
    let lambda: aws_lambda_events::event::dynamodb::Event = serde_json::from_str(&text).unwrap();
    assert_eq!(StreamEvent::from_lambda(&lambda).unwrap().records.len(), 1);
}

#[test]
fn header_fields_are_found_where_the_list_has_them() {
    for (i, name) in STAMP_HEADER_FIELDS.iter().enumerate() {
        assert_eq!(super::header_field(name), Some(i), "{name}");
    }
    for other in ["", "d", "c", "m", "s", "O", "dots", "b"] {
        assert_eq!(super::header_field(other), None, "{other}");
    }
}

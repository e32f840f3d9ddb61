//! The sample events in `events/` parse as Lambda delivers them and each
//! shows the situation its name says.

use aws_lambda_events::event::dynamodb::Event;
use homeward::classify::{classify, Class, EventKind};
use homeward::home::HomeStrategy;
use homeward::Region;

fn load(name: &str) -> Event {
    let path = format!("{}/../../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path} is not a DynamoDB stream event: {e}"))
}

fn classes(name: &str) -> Vec<Result<Class, String>> {
    let homes = HomeStrategy::parse("attribute:src_region", "_hw", "Movies").unwrap();
    load(name)
        .records
        .iter()
        .map(|r| {
            let image = |i: &serde_dynamo::Item| (!i.is_empty()).then(|| i.clone());
            let ttl = r
                .user_identity
                .as_ref()
                .is_some_and(|u| u.type_ == "Service");
            classify(
                &Region::parse(&r.aws_region).unwrap(),
                EventKind::parse(&r.event_name).unwrap(),
                ttl,
                image(&r.change.new_image).as_ref(),
                image(&r.change.old_image).as_ref(),
                "_hw",
                &homes,
            )
            .map_err(|e| e.to_string())
        })
        .collect()
}

#[test]
fn each_sample_shows_its_situation() {
    let west1 = Region::parse("us-west-1").unwrap();
    assert_eq!(
        classes("foreign-write"),
        vec![Ok(Class::Foreign {
            home: west1.clone()
        })]
    );
    assert_eq!(classes("replicated"), vec![Ok(Class::Replicated)]);
    assert_eq!(classes("home-write"), vec![Ok(Class::HomeWrite)]);
    assert_eq!(
        classes("clobber"),
        vec![Ok(Class::Clobber { home: Some(west1) })]
    );
    assert_eq!(classes("echo"), vec![Ok(Class::Echo)]);
    assert!(matches!(
        classes("unattributed")[0],
        Ok(Class::Unattributed { .. })
    ));
    assert_eq!(classes("ttl-delete"), vec![Ok(Class::TtlDelete)]);
    assert_eq!(classes("hard-delete"), vec![Ok(Class::HardDelete)]);
}

#[test]
fn the_malformed_batch_has_two_poison_records() {
    let c = classes("malformed");
    let east1 = Region::parse("us-east-1").unwrap();
    assert_eq!(
        c[0],
        Ok(Class::Foreign {
            home: east1.clone()
        })
    );
    assert!(c[1]
        .as_ref()
        .unwrap_err()
        .contains("MODIFY record has no old image"));
    assert!(c[2]
        .as_ref()
        .unwrap_err()
        .contains("bad dot `eu-west-1:garbage`"));
    assert_eq!(c[3], Ok(Class::Foreign { home: east1 }));
}

#[test]
fn timestamps_are_whole_seconds_and_sources_are_named() {
    for name in ["foreign-write", "clobber", "malformed"] {
        for r in load(name).records {
            assert!(r
                .event_source_arn
                .as_deref()
                .unwrap()
                .contains(":table/Movies/stream/"));
            assert_eq!(
                r.change
                    .approximate_creation_date_time
                    .timestamp_subsec_nanos(),
                0
            );
            assert!(r.change.sequence_number.is_some());
        }
    }
}

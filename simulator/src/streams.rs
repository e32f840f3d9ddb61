//! Reading the Regions' streams: polling moto's DynamoDB Streams (or the
//! memory store's change log) every tick, and turning each change into the
//! record a Lambda event carries (eventSourceARN, whole-second
//! `ApproximateCreationDateTime`, both images). Each record also keeps the
//! service's time of its write, what replication's last-writer-wins
//! compares: the memory store's timestamp, or moto's creation time with
//! the fraction Lambda's events drop.
//!
//! [`Cluster::read_streams`] hands every record to replication and, unless
//! the Region's FilterCriteria ([`crate::filter`]) drop it, to its
//! Region's backlog for delivery.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodbstreams::types::AttributeValue as StreamValue;
use homeward::Region;
use serde_dynamo::Item;
use serde_json::{json, Value};

use crate::cluster::{now_ms, Cluster, SimStore};

/// Where stream records come from.
pub(crate) enum Streams {
    Moto {
        sdk: Box<SdkConfig>,
        iterators: HashMap<Region, Vec<String>>,
    },
    Memory {
        cursors: HashMap<Region, usize>,
    },
}

/// One stream record, kept both ways.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) lambda: Value,
    pub(crate) sequence: String,
    pub(crate) key: Item,
    pub(crate) new_image: Option<Item>,
    pub(crate) old_image: Option<Item>,
    pub(crate) removed: bool,
    /// The tick it was read at (for the batching window).
    pub(crate) read_at: u64,
    /// The service's time of the write in this Region, what
    /// last-writer-wins compares (never the stamp's `t`): in memory the
    /// store's timestamp (a sequence across Regions); on moto the stream
    /// record's `ApproximateCreationDateTime` in microseconds (moto keeps
    /// the fraction Lambda's events drop).
    pub(crate) write_time: u64,
}

impl Cluster {
    /// Reads every stream: queues copies of local writes on the links and
    /// adds every record to its Region's backlog for the resolver. Returns
    /// how many records were read.
    pub async fn read_streams(&mut self) -> usize {
        let mut read = 0;
        for r in self.regions.clone() {
            let records = self.poll(&r).await;
            for record in records {
                read += 1;
                self.route(&r, &record);
                if !self.spec.filters.pass(&record.lambda) {
                    self.stats.filtered_out += 1;
                    continue;
                }
                self.history
                    .entry(r.clone())
                    .or_default()
                    .push(record.clone());
                self.backlog.entry(r.clone()).or_default().push_back(record);
            }
        }
        read
    }

    async fn poll(&mut self, r: &Region) -> Vec<Record> {
        let mut out = Vec::new();
        match &mut self.streams {
            Streams::Moto { sdk, iterators } => {
                let streams = streams_client(sdk, r);
                let mut next = Vec::new();
                let mut raw = Vec::new();
                for it in iterators.remove(r).unwrap_or_default() {
                    let got = streams
                        .get_records()
                        .shard_iterator(&it)
                        .send()
                        .await
                        .expect("get records");
                    raw.extend(got.records.unwrap_or_default());
                    next.push(got.next_shard_iterator.unwrap_or(it));
                }
                iterators.insert(r.clone(), next);
                for rec in &raw {
                    out.push(self.convert(r, rec));
                }
            }
            Streams::Memory { cursors } => {
                let SimStore::Memory(store) = &self.store else {
                    unreachable!("memory streams over a memory store")
                };
                let cursor = cursors.entry(r.clone()).or_default();
                let records = store.stream_from(r, *cursor);
                *cursor += records.len();
                for rec in records {
                    out.push(self.convert_memory(r, rec));
                }
            }
        }
        out
    }

    fn lambda_record(
        &self,
        r: &Region,
        (event_id, event_name, seconds): (String, &str, i64),
        images: (&Item, Option<&Item>, Option<&Item>),
        sequence: &str,
        size: i64,
    ) -> Value {
        let (key, new_image, old_image) = images;
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": seconds,
            "Keys": serde_json::to_value(key).expect("keys"),
            "SequenceNumber": sequence,
            "SizeBytes": size,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(i) = new_image {
            dynamodb["NewImage"] = serde_json::to_value(i).expect("image");
        }
        if let Some(i) = old_image {
            dynamodb["OldImage"] = serde_json::to_value(i).expect("image");
        }
        json!({
            "eventID": event_id,
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": r.as_str(),
            "dynamodb": dynamodb,
            "eventSourceARN": self.stream_arns[r],
        })
    }

    fn convert_memory(&self, r: &Region, rec: crate::memory::MemRecord) -> Record {
        let sequence = format!("{:021}", rec.sequence);
        let size = rec
            .new_image
            .as_ref()
            .or(rec.old_image.as_ref())
            .map_or(0, homeward::size::item_size) as i64;
        let lambda = self.lambda_record(
            r,
            (
                format!("ev-{}", rec.sequence),
                rec.event_name,
                (now_ms() / 1000) as i64,
            ),
            (&rec.key, rec.new_image.as_ref(), rec.old_image.as_ref()),
            &sequence,
            size,
        );
        Record {
            lambda,
            sequence,
            key: rec.key,
            new_image: rec.new_image,
            old_image: rec.old_image,
            removed: rec.event_name == "REMOVE",
            read_at: self.tick,
            write_time: rec.time,
        }
    }

    fn convert(&self, r: &Region, rec: &aws_sdk_dynamodbstreams::types::Record) -> Record {
        let change = rec.dynamodb.as_ref().expect("a stream record");
        let image = |m: &Option<HashMap<String, StreamValue>>| {
            m.as_ref().map(|m| {
                Item::from(
                    m.iter()
                        .map(|(k, v)| (k.clone(), resolver::event::from_stream_value(v)))
                        .collect::<HashMap<_, _>>(),
                )
            })
        };
        let key = image(&change.keys).unwrap_or_default();
        let new_image = image(&change.new_image);
        let old_image = image(&change.old_image);
        let sequence = change.sequence_number.clone().unwrap_or_default();
        let event_name = rec
            .event_name
            .as_ref()
            .map(|e| e.as_str().to_owned())
            .unwrap_or_default();
        // Lambda gives whole seconds; moto gives fractions, which the
        // harness keeps as the write's server time.
        let created = change.approximate_creation_date_time;
        let seconds = created.map(|t| t.secs()).unwrap_or(0);
        let write_time = created.map_or_else(
            || now_ms() * 1000,
            |t| {
                u64::try_from(t.secs()).unwrap_or(0) * 1_000_000
                    + u64::from(t.subsec_nanos() / 1000)
            },
        );
        let mut lambda = self.lambda_record(
            r,
            (
                rec.event_id.clone().unwrap_or_default(),
                &event_name,
                seconds,
            ),
            (&key, new_image.as_ref(), old_image.as_ref()),
            &sequence,
            change.size_bytes.unwrap_or(0),
        );
        if let Some(u) = &rec.user_identity {
            lambda["userIdentity"] = json!({
                "type": u.r#type.clone().unwrap_or_default(),
                "principalId": u.principal_id.clone().unwrap_or_default(),
            });
        }
        Record {
            lambda,
            sequence,
            key,
            new_image,
            old_image,
            removed: event_name == "REMOVE",
            read_at: self.tick,
            write_time,
        }
    }
}

pub(crate) fn streams_client(sdk: &SdkConfig, r: &Region) -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(sdk)
            .region(aws_sdk_dynamodbstreams::config::Region::new(r.to_string()))
            .build(),
    )
}

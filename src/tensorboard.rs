//! TensorBoard event files: every run writes `events.out.tfevents.wgpu-cnn` in its folder, so
//! that `tensorboard --logdir runs` shows its curves. The file is derived from the run's epoch
//! history (what metrics.jsonl holds) and rewritten whole, atomically, after every epoch: a
//! resumed run rewrites it from the checkpoint's history, so an epoch that a killed run logged
//! after its last checkpoint is never there twice.
//!
//! Format (TensorFlow's `tfevents`, read by tensorboard's `EventFileLoader`): a sequence of
//! records `[length: u64 LE][masked CRC-32C of length: u32 LE][data][masked CRC-32C of data]`,
//! each data an `Event` protocol buffer; the first event holds `file_version = "brain.Event:2"`,
//! each later one a `Summary` of scalars (`simple_value`) at `step` = the epoch.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::report::EpochMetrics;

/// The event file's name inside a run folder (TensorBoard reads any name containing `tfevents`).
pub const FILE_NAME: &str = "events.out.tfevents.wgpu-cnn";

/// `tensorflow.Event` (the fields written here).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

/// `tensorflow.Summary.Value` with a scalar.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, tag = "2")]
    pub simple_value: f32,
}

/// The final test numbers of a run (`test/…` scalars at the last epoch).
#[derive(Clone, Copy, Debug)]
pub struct TestScalars {
    pub epoch: u32,
    pub loss: f64,
    pub accuracy: f64,
    /// With test-time augmentation, when it ran.
    pub tta: Option<(f64, f64)>,
}

/// TFRecord's CRC: CRC-32C, rotated right by 15 and offset (so that a CRC of data holding CRCs
/// stays well distributed).
pub fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// The scalars of one epoch: train/val loss and accuracy, learning rate, images/s.
fn epoch_values(m: &EpochMetrics) -> Vec<Value> {
    let mut v = vec![
        ("train/loss", Some(m.train_loss)),
        ("train/accuracy", Some(m.train_accuracy)),
        ("val/loss", m.val_loss),
        ("val/accuracy", m.val_accuracy),
        ("learning_rate", m.lr),
        ("images_per_second", Some(m.images_per_second)),
    ];
    v.retain(|(_, x)| x.is_some());
    v.into_iter()
        .map(|(tag, x)| Value {
            tag: tag.into(),
            simple_value: x.unwrap_or_default() as f32,
        })
        .collect()
}

/// The event file's bytes for `history` (and the final test numbers, when known).
pub fn encode(history: &[EpochMetrics], test: Option<&TestScalars>) -> Vec<u8> {
    use prost::Message as _;
    // Wall times: the epoch's own when recorded, else the sum of the epochs' seconds (files
    // from before `wall_time` was kept).
    let mut clock = 0.0;
    let mut events = Vec::new();
    let first = history.first().and_then(|m| m.wall_time).unwrap_or(0.0);
    events.push(Event {
        wall_time: first,
        step: 0,
        what: Some(What::FileVersion("brain.Event:2".into())),
    });
    for m in history {
        clock += m.seconds;
        events.push(Event {
            wall_time: m.wall_time.unwrap_or(clock),
            step: m.epoch as i64,
            what: Some(What::Summary(Summary {
                value: epoch_values(m),
            })),
        });
    }
    if let Some(t) = test {
        let mut value = vec![
            Value {
                tag: "test/loss".into(),
                simple_value: t.loss as f32,
            },
            Value {
                tag: "test/accuracy".into(),
                simple_value: t.accuracy as f32,
            },
        ];
        if let Some((loss, acc)) = t.tta {
            value.push(Value {
                tag: "test_tta/loss".into(),
                simple_value: loss as f32,
            });
            value.push(Value {
                tag: "test_tta/accuracy".into(),
                simple_value: acc as f32,
            });
        }
        let wall = history.last().and_then(|m| m.wall_time).unwrap_or(clock);
        events.push(Event {
            wall_time: wall,
            step: t.epoch as i64,
            what: Some(What::Summary(Summary { value })),
        });
    }
    let mut out = Vec::new();
    for e in &events {
        record(&mut out, &e.encode_to_vec());
    }
    out
}

/// Writes (replaces, atomically) the run folder's event file.
pub fn write(dir: &Path, history: &[EpochMetrics], test: Option<&TestScalars>) -> Result<PathBuf> {
    let path = dir.join(FILE_NAME);
    crate::io::write_atomic(&path, &encode(history, test))?;
    Ok(path)
}

/// Reads an event file back (checking every CRC): its events in order.
pub fn read(path: &Path) -> Result<Vec<Event>> {
    use prost::Message as _;
    let b =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut events = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let bad = |what: &str| anyhow::anyhow!("{}: {what} at byte {at}", path.display());
        let word = |i: usize, n: usize| b.get(i..i + n).ok_or_else(|| bad("truncated record"));
        let len_bytes = word(at, 8)?;
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        let len_crc = u32::from_le_bytes(word(at + 8, 4)?.try_into().expect("4 bytes"));
        if masked_crc(len_bytes) != len_crc {
            return Err(bad("length CRC mismatch"));
        }
        if len > b.len() {
            return Err(bad("truncated record"));
        }
        let data = word(at + 12, len)?;
        let crc = u32::from_le_bytes(word(at + 12 + len, 4)?.try_into().expect("4 bytes"));
        if masked_crc(data) != crc {
            return Err(bad("data CRC mismatch"));
        }
        events.push(Event::decode(data).map_err(|e| bad(&format!("not an Event ({e})")))?);
        at += 16 + len;
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(e: u32, loss: f64, val: Option<f64>) -> EpochMetrics {
        EpochMetrics {
            epoch: e,
            train_loss: loss,
            train_accuracy: 0.5,
            val_loss: val,
            val_accuracy: val.map(|v| 1.0 - v),
            seconds: 2.0,
            images_per_second: 100.0,
            rss_bytes: None,
            gpu_bytes: None,
            live_buffers: None,
            step: Some(10 * (e as u64 + 1)),
            lr: Some(0.1 / (e + 1) as f64),
            wall_time: None,
        }
    }

    /// CRC-32C's check value (RFC 3720's "123456789" → 0xE3069283) and TFRecord's masking.
    #[test]
    fn masked_crc_is_tfrecords() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(
            masked_crc(b"123456789"),
            0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn events_round_trip_with_every_scalar() {
        let h = vec![epoch(0, 2.0, Some(1.5)), epoch(1, 1.0, None)];
        let test = TestScalars {
            epoch: 1,
            loss: 0.9,
            accuracy: 0.7,
            tta: Some((0.8, 0.75)),
        };
        let dir = std::env::temp_dir().join(format!("wgpu-cnn-tb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = write(&dir, &h, Some(&test)).unwrap();
        let ev = read(&path).unwrap();
        assert_eq!(ev.len(), 4);
        assert_eq!(ev[0].what, Some(What::FileVersion("brain.Event:2".into())));
        let tags = |e: &Event| match &e.what {
            Some(What::Summary(s)) => s
                .value
                .iter()
                .map(|v| (v.tag.clone(), v.simple_value))
                .collect::<Vec<_>>(),
            _ => panic!("not a summary"),
        };
        assert_eq!(ev[1].step, 0);
        assert_eq!(
            tags(&ev[1]),
            vec![
                ("train/loss".into(), 2.0),
                ("train/accuracy".into(), 0.5),
                ("val/loss".into(), 1.5),
                ("val/accuracy".into(), -0.5),
                ("learning_rate".into(), 0.1),
                ("images_per_second".into(), 100.0),
            ]
        );
        // No validation: no val scalars; wall times count the epochs' seconds.
        assert_eq!(tags(&ev[2]).len(), 4);
        assert_eq!((ev[2].step, ev[2].wall_time), (1, 4.0));
        assert_eq!(tags(&ev[3])[3], ("test_tta/accuracy".into(), 0.75));
        // A flipped bit is caught.
        let mut b = std::fs::read(&path).unwrap();
        b[30] ^= 1;
        std::fs::write(&path, &b).unwrap();
        assert!(read(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! `sequex-streams`: the operators' tool that keeps the streams and consumers of
//! `configs/` on a server, and recovers them without a person (the daemon never creates
//! streams).
//!
//! - [`Provisioner::run`] with [`Mode::Apply`] creates what is missing; recreates TRADE
//!   (a memory stream, lost when a single server restarts) past the last TRADE sequence
//!   RECORD has sourced, so that RECORD skips nothing; re-attaches RECORD's source when it
//!   is stalled on a TRADE that was recreated; reports drift field by field, and with
//!   [`Mode::Update`] fixes it.
//! - [`Mode::Check`] changes nothing and reports the same findings.
//!
//! # Layout
//! - [`api`]: the JetStream API in the JSON `configs/` holds.
//! - this module: what apply, check and watch find and do.
#![warn(missing_docs)]

pub mod api;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sequex_subjects::{Consumer, Stream, header};
use serde_json::Value;

use crate::api::ApiError;

/// The stream files, in creation order (RECORD sources TRADE).
pub const STREAM_FILES: [(Stream, &str); 2] = [
    (Stream::Trade, "stream_trade.json"),
    (Stream::Record, "stream_record.json"),
];

/// The consumer files, with the consumer each defines.
pub const CONSUMER_FILES: [(Consumer, &str); 3] = [
    (Consumer::TradePubsub, "consumer_trade_pubsub.json"),
    (Consumer::TradeWorkQueue, "consumer_trade_work_queue.json"),
    (Consumer::Record, "consumer_record.json"),
];

/// A source that made no progress for this long while its origin holds newer messages is
/// stalled: well within TRADE's 5 s max_age, past which what RECORD has not copied is gone.
pub const STALL_AFTER: Duration = Duration::from_secs(2);

/// How long a re-attached source is left to start before it is judged: longer than the
/// server takes to set a source up (2.15.1: RECORD copies a recreated TRADE 2.3-2.4 s after
/// a restart in the restart test, its source reporting no
/// activity meanwhile; a re-attach cancels the setup in flight, so judging sooner
/// re-attaches forever).
pub const SETUP_GRACE: Duration = Duration::from_secs(3);

/// A source re-attached again without having moved is left twice as long, up to this:
/// however slow a server is to start a source, re-attaching cannot cancel every start.
const MAX_SETUP_GRACE: Duration = Duration::from_secs(48);

/// Why the tool could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of `configs/` could not be read.
    #[error("cannot read {path}: {error}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: String,
    },
    /// The server did not answer or refused a request.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A stored message could not be read.
    #[error("cannot read RECORD's last message: {0}")]
    Message(String),
}

/// What to do with what is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Change nothing; report.
    Check,
    /// Create what is missing, recover TRADE and RECORD's sourcing; report drift.
    Apply,
    /// As [`Mode::Apply`], and update what drifted from the files.
    Update,
}

/// One thing found (and, outside [`Mode::Check`], done).
#[derive(Clone, Debug, PartialEq)]
pub enum Finding {
    /// A stream or consumer (`TRADE`, `TRADE/TRADE_PUBSUB`) does not exist ([`Mode::Check`]).
    Missing(String),
    /// It was created.
    Created(String),
    /// TRADE was created again, starting past what RECORD already holds.
    RecreatedTrade {
        /// TRADE's first sequence.
        first_seq: u64,
    },
    /// A field differs from its file.
    Drift {
        /// The stream or consumer.
        what: String,
        /// The field, `sources[0].name` style.
        field: String,
        /// The server's value (`null`: absent).
        live: Value,
        /// The file's value.
        file: Value,
    },
    /// It was updated to match its file.
    Updated(String),
    /// RECORD's source makes no progress although TRADE holds newer messages
    /// ([`Mode::Check`]).
    Stalled {
        /// The last TRADE sequence RECORD holds.
        sourced: u64,
        /// TRADE's last sequence.
        trade_last: u64,
    },
    /// RECORD's source was removed and added again, so that it reads the TRADE there is.
    Reattached {
        /// The last TRADE sequence RECORD held; it resumes after it.
        sourced: u64,
    },
}

impl Finding {
    /// Whether the server does not match the files (what `check` exits 1 for).
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            Finding::Missing(_) | Finding::Drift { .. } | Finding::Stalled { .. }
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Missing(what) => write!(f, "missing: {what}"),
            Finding::Created(what) => write!(f, "created: {what}"),
            Finding::RecreatedTrade { first_seq } => write!(
                f,
                "recreated: TRADE, from sequence {first_seq} (past what RECORD holds)"
            ),
            Finding::Drift {
                what,
                field,
                live,
                file,
            } => write!(
                f,
                "drift: {what} {field} is {live} on the server, {file} in its file (apply --update changes it)"
            ),
            Finding::Updated(what) => write!(f, "updated: {what} to match its file"),
            Finding::Stalled {
                sourced,
                trade_last,
            } => write!(
                f,
                "stalled: RECORD's source holds TRADE up to {sourced}, TRADE is at {trade_last}, no progress for {STALL_AFTER:?} (apply re-attaches it)"
            ),
            Finding::Reattached { sourced } => write!(
                f,
                "re-attached: RECORD's source of TRADE, resuming after TRADE sequence {sourced}"
            ),
        }
    }
}

/// The files of `configs/`, read once.
#[derive(Clone, Debug)]
pub struct Configs {
    streams: Vec<(Stream, Value)>,
    consumers: Vec<(Consumer, Value)>,
}

impl Configs {
    /// Reads every stream and consumer file of `dir`.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let read = |file: &str| {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::Config {
                path: path.clone(),
                error: e.to_string(),
            })?;
            serde_json::from_str::<Value>(&text).map_err(|e| Error::Config {
                path,
                error: e.to_string(),
            })
        };
        Ok(Configs {
            streams: STREAM_FILES
                .iter()
                .map(|(s, f)| Ok((*s, read(f)?)))
                .collect::<Result<_, Error>>()?,
            consumers: CONSUMER_FILES
                .iter()
                .map(|(c, f)| Ok((*c, read(f)?)))
                .collect::<Result<_, Error>>()?,
        })
    }

    fn stream(&self, stream: Stream) -> &Value {
        &self
            .streams
            .iter()
            .find(|(s, _)| *s == stream)
            .expect("STREAM_FILES names every stream")
            .1
    }
}

/// Applies or checks [`Configs`] on one server.
#[derive(Debug)]
pub struct Provisioner {
    client: async_nats::Client,
    configs: Configs,
    /// Across passes (`watch`): RECORD's source, as last seen.
    progress: Mutex<Progress>,
}

impl Provisioner {
    /// A provisioner of `configs` over `client`.
    pub fn new(client: async_nats::Client, configs: Configs) -> Self {
        Provisioner {
            client,
            configs,
            progress: Mutex::new(Progress::default()),
        }
    }

    /// One pass: what was found and, outside [`Mode::Check`], done.
    pub async fn run(&self, mode: Mode) -> Result<Vec<Finding>, Error> {
        let mut findings = Vec::new();
        let trade = self.configs.stream(Stream::Trade);
        let record = self.configs.stream(Stream::Record);
        let mut trade_recreated = false;

        let record_info = api::stream_info(&self.client, Stream::Record.name()).await?;
        match api::stream_info(&self.client, Stream::Trade.name()).await? {
            Some(info) => {
                self.drift(mode, trade, &info["config"], &mut findings)
                    .await?
            }
            None if mode == Mode::Check => findings.push(Finding::Missing("stream TRADE".into())),
            None => match self.sourced(record_info.as_ref()).await? {
                // RECORD remembers TRADE's sequences: a new TRADE starts past them.
                Some(sourced) => {
                    let mut config = trade.clone();
                    config["first_seq"] = (sourced + 1).into();
                    api::put_stream(&self.client, "CREATE", &config).await?;
                    findings.push(Finding::RecreatedTrade {
                        first_seq: sourced + 1,
                    });
                    trade_recreated = true;
                }
                None => {
                    api::put_stream(&self.client, "CREATE", trade).await?;
                    findings.push(Finding::Created("stream TRADE".into()));
                }
            },
        }

        match &record_info {
            Some(info) => {
                self.drift(mode, record, &info["config"], &mut findings)
                    .await?;
                if trade_recreated {
                    let sourced = self.sourced(Some(info)).await?.unwrap_or(0);
                    self.reattach(record, sourced).await?;
                    findings.push(Finding::Reattached { sourced });
                } else if let Some(stalled) = self.stalled(info).await? {
                    if mode == Mode::Check {
                        findings.push(stalled);
                    } else if let Finding::Stalled { sourced, .. } = stalled {
                        self.reattach(record, sourced).await?;
                        findings.push(Finding::Reattached { sourced });
                    }
                }
            }
            None if mode == Mode::Check => findings.push(Finding::Missing("stream RECORD".into())),
            None => {
                api::put_stream(&self.client, "CREATE", record).await?;
                findings.push(Finding::Created("stream RECORD".into()));
            }
        }

        for (consumer, config) in &self.configs.consumers {
            let stream = consumer.stream().name();
            let what = format!("consumer {stream}/{}", consumer.name());
            if mode == Mode::Check
                && findings.contains(&Finding::Missing(format!("stream {stream}")))
            {
                continue;
            }
            match api::consumer_info(&self.client, stream, consumer.name()).await? {
                Some(info) => {
                    let mut drifted = Vec::new();
                    compare(config, &info["config"], "", &mut drifted);
                    if !drifted.is_empty() && mode == Mode::Update {
                        api::put_consumer(&self.client, stream, config).await?;
                        findings.push(Finding::Updated(what));
                    } else {
                        findings.extend(drifted.into_iter().map(|(field, live, file)| {
                            Finding::Drift {
                                what: what.clone(),
                                field,
                                live,
                                file,
                            }
                        }));
                    }
                }
                None if mode == Mode::Check => findings.push(Finding::Missing(what)),
                None => {
                    api::put_consumer(&self.client, stream, config).await?;
                    findings.push(Finding::Created(what));
                }
            }
        }
        Ok(findings)
    }

    /// Reports (or, with [`Mode::Update`], fixes) the fields of a stream that differ from
    /// its file.
    async fn drift(
        &self,
        mode: Mode,
        file: &Value,
        live: &Value,
        findings: &mut Vec<Finding>,
    ) -> Result<(), Error> {
        let what = format!("stream {}", file["name"].as_str().unwrap_or_default());
        let mut drifted = Vec::new();
        compare(file, live, "", &mut drifted);
        if drifted.is_empty() {
            return Ok(());
        }
        if mode == Mode::Update {
            api::put_stream(&self.client, "UPDATE", file).await?;
            findings.push(Finding::Updated(what));
        } else {
            findings.extend(
                drifted
                    .into_iter()
                    .map(|(field, live, file)| Finding::Drift {
                        what: what.clone(),
                        field,
                        live,
                        file,
                    }),
            );
        }
        Ok(())
    }

    async fn sourced(&self, record: Option<&Value>) -> Result<Option<u64>, Error> {
        match record {
            Some(record) => last_sourced(&self.client, record).await,
            None => Ok(None),
        }
    }

    /// RECORD's source, if it makes no progress while TRADE holds newer messages.
    async fn stalled(&self, record: &Value) -> Result<Option<Finding>, Error> {
        let Some(source) = record["sources"].as_array().and_then(|s| s.first()) else {
            return Ok(None);
        };
        let Some(trade) = api::stream_info(&self.client, Stream::Trade.name()).await? else {
            return Ok(None);
        };
        let trade_last = trade["state"]["last_seq"].as_u64().unwrap_or(0);
        let sourced = self.sourced(Some(record)).await?.unwrap_or(0);
        if trade_last <= sourced {
            self.progress().sourced = None;
            return Ok(None);
        }
        // `active`: nanoseconds since the source last heard from TRADE (-1: never, or a
        // setup in flight).
        let active = source["active"].as_i64().unwrap_or(-1);
        let silent = u64::try_from(active).is_ok_and(|n| Duration::from_nanos(n) >= STALL_AFTER);
        let mut progress = self.progress();
        if progress
            .reattached
            .is_some_and(|(at, grace, _)| at.elapsed() < grace)
        {
            return Ok(None);
        }
        let stalled = match progress.sourced {
            Some((at, since)) if at == sourced => silent || since.elapsed() >= STALL_AFTER,
            first_look => {
                let stalled = silent || (first_look.is_none() && active < 0);
                progress.sourced = Some((sourced, Instant::now()));
                stalled
            }
        };
        Ok(stalled.then_some(Finding::Stalled {
            sourced,
            trade_last,
        }))
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Removes RECORD's source and adds it again (`nats stream edit` twice): the new
    /// source starts after the last TRADE sequence RECORD holds.
    async fn reattach(&self, record: &Value, sourced: u64) -> Result<(), Error> {
        let mut unsourced = record.clone();
        if let Some(config) = unsourced.as_object_mut() {
            config.remove("sources");
        }
        api::put_stream(&self.client, "UPDATE", &unsourced).await?;
        api::put_stream(&self.client, "UPDATE", record).await?;
        let mut progress = self.progress();
        let grace = match progress.reattached {
            Some((_, grace, from)) if from == sourced => (grace * 2).min(MAX_SETUP_GRACE),
            _ => SETUP_GRACE,
        };
        let now = Instant::now();
        *progress = Progress {
            sourced: Some((sourced, now)),
            reattached: Some((now, grace, sourced)),
        };
        Ok(())
    }
}

/// The last TRADE sequence RECORD holds, from the `Nats-Stream-Source` header of its last
/// message; `None` when RECORD (`record`: its stream info) is empty.
pub async fn last_sourced(
    client: &async_nats::Client,
    record: &Value,
) -> Result<Option<u64>, Error> {
    let last = record["state"]["last_seq"].as_u64().unwrap_or(0);
    if last == 0 {
        return Ok(None);
    }
    let js = async_nats::jetstream::new(client.clone());
    let stream = js
        .get_stream_no_info(Stream::Record.name())
        .await
        .map_err(|e| Error::Message(e.to_string()))?;
    let message = stream
        .get_raw_message(last)
        .await
        .map_err(|e| Error::Message(e.to_string()))?;
    Ok(message
        .headers
        .get(header::STREAM_SOURCE)
        .and_then(|v| header::parse_stream_source(v.as_str()))
        .map(|(_, seq)| seq))
}

/// RECORD's source across passes.
#[derive(Debug, Default)]
struct Progress {
    /// The last TRADE sequence RECORD held, and since when.
    sourced: Option<(u64, Instant)>,
    /// When it was last re-attached, the time it was given to start, and the TRADE
    /// sequence it was to resume after.
    reattached: Option<(Instant, Duration, u64)>,
}

/// Collects `(field, live, file)` for every field of `file` that `live` does not match.
/// Only what the file sets is compared; a field the server leaves out matches a file value
/// that is its default (`false`, `0`, `""`, `[]`).
fn compare(file: &Value, live: &Value, path: &str, out: &mut Vec<(String, Value, Value)>) {
    match (file, live) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                let field = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match have.get(key) {
                    Some(live) => compare(value, live, &field, out),
                    None if is_default(value) => {}
                    None => out.push((field, Value::Null, value.clone())),
                }
            }
        }
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => {
            for (i, (w, h)) in want.iter().zip(have).enumerate() {
                compare(w, h, &format!("{path}[{i}]"), out);
            }
        }
        (want, have) if want == have => {}
        (want, have) => out.push((path.to_string(), have.clone(), want.clone())),
    }
}

fn is_default(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drift_is_reported_field_by_field() {
        let file = json!({"name": "TRADE", "max_age": 5, "sealed": false,
            "sources": [{"name": "TRADE", "subject_transforms": [{"src": "a", "dest": "b"}]}]});
        let live = json!({"name": "TRADE", "max_age": 7, "extra": 1,
            "sources": [{"name": "TRADE", "subject_transforms": [{"src": "a", "dest": "c"}]}]});
        let mut out = Vec::new();
        compare(&file, &live, "", &mut out);
        assert_eq!(
            out,
            [
                ("max_age".to_string(), json!(7), json!(5)),
                (
                    "sources[0].subject_transforms[0].dest".to_string(),
                    json!("c"),
                    json!("b")
                ),
            ]
        );
    }
}

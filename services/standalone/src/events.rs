//! `iee events send`: JSON-lines events to a TouchpointService, with a result line per event.

use std::{
    collections::HashMap,
    io::{BufRead, Write},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context;
use iee_api::{
    ingest::{EventStatus, IngestRequest, TouchpointApi, TouchpointClient},
    pb::common::{
        Channel, Event, JourneyStage, Money, PropertyValue, SurveyAnswer, SurveyKind,
        property_value::Kind,
    },
};
use serde::Deserialize;
use serde_json::json;

/// Event commands.
#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Sends JSON-lines events (one event object per line) and prints one result per event.
    /// Exit status: 0 all accepted or duplicate, 1 some rejected or unreadable, 2 failure.
    Send {
        /// Server address, `host:port` or `http://host:port`.
        #[arg(long, value_name = "ADDR")]
        target: String,
        /// JSON-lines file; standard input if absent.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Events per request.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
}

/// An event as JSON. Enums are lower-case names (`web`, `awareness`, `nps`); times RFC 3339.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEvent {
    event_id: String,
    tenant_id: String,
    #[serde(default)]
    customer_id: String,
    #[serde(default)]
    anonymous_id: String,
    #[serde(rename = "type")]
    event_type: String,
    channel: String,
    #[serde(default)]
    touchpoint: String,
    #[serde(default)]
    journey_stage: Option<String>,
    /// RFC 3339; the time of sending if absent.
    #[serde(default)]
    occurred_at: Option<String>,
    #[serde(default)]
    properties: HashMap<String, serde_json::Value>,
    #[serde(default)]
    value: Option<JsonMoney>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    survey: Option<JsonSurvey>,
    #[serde(default)]
    sequence: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonMoney {
    amount_minor: i64,
    currency: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSurvey {
    kind: String,
    score: i32,
    #[serde(default)]
    survey_id: String,
}

fn enum_value(
    field: &str,
    prefix: &str,
    name: &str,
    lookup: impl Fn(&str) -> Option<i32>,
) -> anyhow::Result<i32> {
    let full = format!("{prefix}{}", name.to_ascii_uppercase());
    lookup(&full).ok_or_else(|| anyhow::anyhow!("{field}: unknown value {name:?}"))
}

impl JsonEvent {
    fn into_event(self) -> anyhow::Result<Event> {
        let channel = enum_value("channel", "CHANNEL_", &self.channel, |s| {
            Channel::from_str_name(s).map(|c| c as i32)
        })?;
        let journey_stage = match &self.journey_stage {
            Some(stage) => enum_value("journey_stage", "JOURNEY_STAGE_", stage, |s| {
                JourneyStage::from_str_name(s).map(|c| c as i32)
            })?,
            None => 0,
        };
        let occurred_at = match &self.occurred_at {
            Some(text) => text
                .parse::<prost_types::Timestamp>()
                .map_err(|e| anyhow::anyhow!("occurred_at: not RFC 3339 ({e})"))?,
            None => prost_types::Timestamp::from(std::time::SystemTime::now()),
        };
        let mut properties = HashMap::new();
        for (key, value) in self.properties {
            let kind = match value {
                serde_json::Value::String(s) => Kind::StringValue(s),
                serde_json::Value::Bool(b) => Kind::BoolValue(b),
                serde_json::Value::Number(n) => Kind::NumberValue(
                    n.as_f64()
                        .ok_or_else(|| anyhow::anyhow!("properties.{key}: number out of range"))?,
                ),
                _ => anyhow::bail!("properties.{key}: must be a string, number or bool"),
            };
            properties.insert(key, PropertyValue { kind: Some(kind) });
        }
        let survey = match self.survey {
            Some(s) => Some(SurveyAnswer {
                kind: enum_value("survey.kind", "SURVEY_KIND_", &s.kind, |n| {
                    SurveyKind::from_str_name(n).map(|c| c as i32)
                })?,
                score: s.score,
                survey_id: s.survey_id,
            }),
            None => None,
        };
        Ok(Event {
            event_id: self.event_id,
            tenant_id: self.tenant_id,
            customer_id: self.customer_id,
            anonymous_id: self.anonymous_id,
            r#type: self.event_type,
            channel,
            touchpoint: self.touchpoint,
            journey_stage,
            occurred_at: Some(occurred_at),
            properties,
            value: self.value.map(|v| Money {
                amount_minor: v.amount_minor,
                currency: v.currency,
            }),
            text: self.text,
            survey,
            sequence: self.sequence,
        })
    }
}

pub async fn run(command: EventsCommand) -> anyhow::Result<ExitCode> {
    let EventsCommand::Send {
        target,
        file,
        batch,
    } = command;
    let endpoint = if target.contains("://") {
        target
    } else {
        format!("http://{target}")
    };
    let reader: Box<dyn BufRead> = match &file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let client = TouchpointClient::connect(endpoint).await?;
    let mut out = std::io::stdout().lock();
    let mut pending: Vec<(usize, Event)> = Vec::new();
    let mut failed = false;
    let mut totals = (0u64, 0u64, 0u64);
    for (number, line) in reader.lines().enumerate() {
        let number = number + 1;
        let line = line.context("read events")?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<JsonEvent>(&line)
            .map_err(anyhow::Error::from)
            .and_then(JsonEvent::into_event);
        match parsed {
            Ok(event) => pending.push((number, event)),
            Err(err) => {
                failed = true;
                writeln!(
                    out,
                    "{}",
                    json!({"line": number, "status": "unreadable", "reason": format!("{err:#}")})
                )?;
            }
        }
        if pending.len() >= batch.max(1) {
            failed |= send(&client, &mut pending, &mut out, &mut totals).await?;
        }
    }
    failed |= send(&client, &mut pending, &mut out, &mut totals).await?;
    eprintln!(
        "accepted {}, duplicate {}, rejected {}",
        totals.0, totals.1, totals.2
    );
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn send(
    client: &TouchpointClient,
    pending: &mut Vec<(usize, Event)>,
    out: &mut impl Write,
    totals: &mut (u64, u64, u64),
) -> anyhow::Result<bool> {
    if pending.is_empty() {
        return Ok(false);
    }
    let (lines, events): (Vec<usize>, Vec<Event>) = std::mem::take(pending).into_iter().unzip();
    let response = client
        .ingest(IngestRequest { events })
        .await
        .context("ingest")?;
    let mut rejected = false;
    for result in response.results {
        let line = lines
            .get(result.index as usize)
            .copied()
            .unwrap_or_default();
        let record = match EventStatus::try_from(result.status) {
            Ok(EventStatus::Accepted) => {
                totals.0 += 1;
                json!({"line": line, "event_id": result.event_id, "status": "accepted", "shard": result.shard, "offset": result.offset})
            }
            Ok(EventStatus::Duplicate) => {
                totals.1 += 1;
                json!({"line": line, "event_id": result.event_id, "status": "duplicate", "shard": result.shard, "offset": result.offset})
            }
            _ => {
                totals.2 += 1;
                rejected = true;
                let rejection = result.rejection.unwrap_or_default();
                json!({"line": line, "event_id": result.event_id, "status": "rejected", "field": rejection.field, "reason": rejection.reason})
            }
        };
        writeln!(out, "{record}")?;
    }
    Ok(rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> anyhow::Result<Event> {
        serde_json::from_str::<JsonEvent>(line)
            .map_err(anyhow::Error::from)
            .and_then(JsonEvent::into_event)
    }

    #[test]
    fn lower_case_names_map_to_the_enums() {
        let event = parse(
            r#"{"event_id":"e","tenant_id":"t","customer_id":"c","type":"survey_response",
                "channel":"support","journey_stage":"churn_risk","occurred_at":"2026-01-02T03:04:05Z",
                "survey":{"kind":"csat","score":4},"properties":{"n":1.5,"b":true,"s":"x"},
                "value":{"amount_minor":-100,"currency":"EUR"},"sequence":9}"#,
        )
        .unwrap();
        assert_eq!(event.channel, Channel::Support as i32);
        assert_eq!(event.journey_stage, JourneyStage::ChurnRisk as i32);
        assert_eq!(event.survey.unwrap().kind, SurveyKind::Csat as i32);
        assert_eq!(event.occurred_at.unwrap().seconds, 1_767_323_045);
        assert_eq!(event.properties.len(), 3);
        assert_eq!(event.value.unwrap().amount_minor, -100);
        assert_eq!(event.sequence, Some(9));
    }

    #[test]
    fn bad_values_name_their_field() {
        let base = r#""event_id":"e","tenant_id":"t","customer_id":"c","type":"click""#;
        for (extra, field) in [
            (r#","channel":"fax""#, "channel"),
            (
                r#","channel":"web","journey_stage":"bored""#,
                "journey_stage",
            ),
            (
                r#","channel":"web","occurred_at":"yesterday""#,
                "occurred_at",
            ),
            (r#","channel":"web","properties":{"k":[1]}"#, "properties.k"),
            (
                r#","channel":"web","survey":{"kind":"stars","score":1}"#,
                "survey.kind",
            ),
        ] {
            let err = parse(&format!("{{{base}{extra}}}")).unwrap_err();
            assert!(format!("{err:#}").starts_with(field), "{field}: {err:#}");
        }
    }

    #[test]
    fn unknown_json_keys_are_refused() {
        let err = parse(
            r#"{"event_id":"e","tenant_id":"t","type":"click","channel":"web","chanel":"x"}"#,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("chanel"), "{err:#}");
    }
}

//! `iee decide`: sets a tenant's decision configuration, asks for a decision and explains one,
//! against any server that serves the DecisionService.

use std::{collections::HashMap, path::PathBuf, process::ExitCode};

use anyhow::Context;
use iee_api::{
    decide::{
        DecideApi, DecideClient, DecideRequest, Direction, ExplainDecisionRequest, FilterStage,
        GetConfigRequest, PriorityFactors, PutConfigRequest,
    },
    pb::common::{Channel, CustomerRef, PropertyValue, property_value::Kind},
};

/// Decision commands.
#[derive(Debug, clap::Subcommand)]
pub enum DecideCommand {
    /// Validates a YAML decision configuration and makes it the tenant's active one. Exit
    /// status 1 lists every problem with its path and line.
    PutConfig {
        /// Server address, `host:port` or `http://host:port`.
        #[arg(long, value_name = "ADDR")]
        target: String,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The YAML file (see docs/decide-config.md).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// Only validate; activate nothing.
        #[arg(long)]
        validate_only: bool,
    },
    /// Prints the tenant's active configuration.
    GetConfig {
        /// Server address.
        #[arg(long, value_name = "ADDR")]
        target: String,
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Asks for the next best actions and prints them with every factor of their priority.
    Run {
        /// Server address.
        #[arg(long, value_name = "ADDR")]
        target: String,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The customer id.
        #[arg(long)]
        customer: String,
        /// The channel (`web`, `app`, `email`, ...).
        #[arg(long, default_value = "web")]
        channel: String,
        /// The touchpoint.
        #[arg(long, default_value = "")]
        touchpoint: String,
        /// An outbound decision instead of an inbound one.
        #[arg(long)]
        outbound: bool,
        /// Context values, `key=value` (numbers and true/false are typed).
        #[arg(long = "context", value_name = "KEY=VALUE")]
        context: Vec<String>,
        /// Actions to return.
        #[arg(long, default_value_t = 1)]
        max: u32,
    },
    /// Explains a logged decision: why each action was or was not returned.
    Explain {
        /// Server address.
        #[arg(long, value_name = "ADDR")]
        target: String,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The decision id.
        #[arg(long)]
        decision: String,
    },
}

async fn client(target: &str) -> anyhow::Result<DecideClient> {
    let endpoint = if target.contains("://") {
        target.to_owned()
    } else {
        format!("http://{target}")
    };
    Ok(DecideClient::connect(endpoint).await?)
}

/// A `key=value` context argument, typed.
fn context_value(arg: &str) -> anyhow::Result<(String, PropertyValue)> {
    let (key, value) = arg
        .split_once('=')
        .with_context(|| format!("--context {arg:?}: expected KEY=VALUE"))?;
    let kind = match value {
        "true" => Kind::BoolValue(true),
        "false" => Kind::BoolValue(false),
        v => match v.parse::<f64>() {
            Ok(n) if n.is_finite() => Kind::NumberValue(n),
            _ => Kind::StringValue(v.to_owned()),
        },
    };
    Ok((key.to_owned(), PropertyValue { kind: Some(kind) }))
}

fn factors_text(f: Option<&PriorityFactors>) -> String {
    f.map_or_else(String::new, |f| {
        format!(
            "priority {:.4} = propensity {:.4} (mean {:.4}) × context {:.2} × value {:.2} × weight {:.2}",
            f.priority, f.propensity, f.propensity_mean, f.context_weight, f.value, f.business_weight
        )
    })
}

fn stage_name(stage: i32) -> String {
    FilterStage::try_from(stage)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("FILTER_STAGE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

pub async fn run(command: DecideCommand) -> anyhow::Result<ExitCode> {
    match command {
        DecideCommand::PutConfig {
            target,
            tenant,
            file,
            validate_only,
        } => {
            let yaml = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let decide = client(&target).await?;
            let current = decide
                .get_config(GetConfigRequest {
                    tenant_id: tenant.clone(),
                    version: String::new(),
                })
                .await
                .map(|c| c.version)
                .unwrap_or_default();
            let put = decide
                .put_config(PutConfigRequest {
                    tenant_id: tenant,
                    yaml,
                    expected_version: current,
                    validate_only,
                })
                .await?;
            if !put.errors.is_empty() {
                for e in &put.errors {
                    eprintln!(
                        "{}:{}:{}: {}: {}",
                        file.display(),
                        e.line,
                        e.column,
                        e.path,
                        e.message
                    );
                }
                return Ok(ExitCode::from(1));
            }
            if validate_only {
                println!("valid");
            } else {
                println!("active version {}", put.version);
            }
            Ok(ExitCode::SUCCESS)
        }
        DecideCommand::GetConfig { target, tenant } => {
            let got = client(&target)
                .await?
                .get_config(GetConfigRequest {
                    tenant_id: tenant,
                    version: String::new(),
                })
                .await?;
            println!("# version {}", got.version);
            print!("{}", got.yaml);
            Ok(ExitCode::SUCCESS)
        }
        DecideCommand::Run {
            target,
            tenant,
            customer,
            channel,
            touchpoint,
            outbound,
            context,
            max,
        } => {
            let channel =
                Channel::from_str_name(&format!("CHANNEL_{}", channel.to_ascii_uppercase()))
                    .with_context(|| format!("--channel: unknown channel {channel:?}"))?;
            let context: HashMap<String, PropertyValue> = context
                .iter()
                .map(|c| context_value(c))
                .collect::<anyhow::Result<_>>()?;
            let response = client(&target)
                .await?
                .decide(DecideRequest {
                    customer: Some(CustomerRef {
                        tenant_id: tenant,
                        customer_id: customer,
                        anonymous_id: String::new(),
                    }),
                    channel: channel as i32,
                    touchpoint,
                    direction: if outbound {
                        Direction::Outbound
                    } else {
                        Direction::Inbound
                    } as i32,
                    context,
                    max_actions: max,
                    request_id: String::new(),
                })
                .await?;
            println!(
                "decision {} (config {}, profile version {}{}{})",
                response.decision_id,
                response.config_version,
                response.profile_version,
                if response.holdout {
                    ", global holdout"
                } else {
                    ""
                },
                if response.degraded.is_empty() {
                    String::new()
                } else {
                    format!(", degraded: {}", response.degraded.join(", "))
                }
            );
            for a in &response.actions {
                println!(
                    "  {}. {}  {}  (chosen with probability {:.3})",
                    a.rank,
                    a.action_id,
                    factors_text(a.factors.as_ref()),
                    a.selection_probability
                );
            }
            for f in &response.filtered {
                println!("  - {} [{}] {}", f.action_id, stage_name(f.stage), f.reason);
            }
            Ok(ExitCode::SUCCESS)
        }
        DecideCommand::Explain {
            target,
            tenant,
            decision,
        } => {
            let explained = client(&target)
                .await?
                .explain_decision(ExplainDecisionRequest {
                    tenant_id: tenant,
                    decision_id: decision,
                    action_ids: Vec::new(),
                })
                .await?;
            for a in &explained.actions {
                let verdict = if a.selected {
                    format!("returned at rank {}", a.rank)
                } else {
                    format!("dropped at {}: {}", stage_name(a.stage), a.reason)
                };
                println!("{}: {verdict}", a.action_id);
                if a.factors.is_some() {
                    println!("    {}", factors_text(a.factors.as_ref()));
                }
                for e in &a.evaluations {
                    let result = if !e.error.is_empty() {
                        format!("error: {}", e.error)
                    } else if e.passed {
                        "passed".to_owned()
                    } else {
                        "failed".to_owned()
                    };
                    println!(
                        "    [{}] {} `{}`: {result}",
                        stage_name(e.stage),
                        e.rule,
                        e.expression
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_values_are_typed() {
        let (k, v) = context_value("page=cart").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (k.as_str(), v.kind),
            ("page", Some(Kind::StringValue("cart".into())))
        );
        let (_, v) = context_value("basket=42.5").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.kind, Some(Kind::NumberValue(42.5)));
        let (_, v) = context_value("vip=true").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.kind, Some(Kind::BoolValue(true)));
        assert!(context_value("no-equals-sign").is_err());
    }
}

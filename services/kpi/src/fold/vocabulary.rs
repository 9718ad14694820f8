//! The touchpoints and action ids admitted as dimension values per tenant, so a client sending
//! ever new names cannot grow the aggregates without bound: past the cap, names count as
//! [`OTHER`]. Admissions are stored as marks, so every shard and restart sees them.

use std::collections::{HashMap, HashSet};

use iee_store::MarkOp;

use super::config::FoldConfig;
use super::observations::Observations;
use crate::fields::OTHER;

/// Prefix of the marks of admitted touchpoints (`tp|<name>`).
pub const TOUCHPOINT_MARK: &str = "tp|";
/// Prefix of the marks of admitted action ids (`act|<name>`).
pub const ACTION_MARK: &str = "act|";

/// One tenant's admitted names.
#[derive(Debug, Clone, Default)]
struct Admitted {
    /// True once the stored marks were loaded.
    loaded: bool,
    /// Admitted touchpoints.
    touchpoints: HashSet<String>,
    /// Admitted action ids.
    actions: HashSet<String>,
}

/// Admitted touchpoints and actions of every tenant seen.
///
/// Shards admit independently between loads, so a tenant may end up with a few names more
/// than the cap across shards; every admitted name stays admitted.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    /// Cap of admitted touchpoints per tenant.
    max_touchpoints: usize,
    /// Cap of admitted action ids per tenant.
    max_actions: usize,
    /// Admitted names by tenant.
    tenants: HashMap<String, Admitted>,
}

impl Vocabulary {
    /// An empty vocabulary with the caps of `config`.
    pub fn new(config: &FoldConfig) -> Self {
        Self {
            max_touchpoints: usize::try_from(config.max_touchpoints).unwrap_or(usize::MAX),
            max_actions: usize::try_from(config.max_actions).unwrap_or(usize::MAX),
            tenants: HashMap::new(),
        }
    }

    /// Adds the names admitted in the stored marks of `tenant` (one map per shard, as
    /// `KpiStore::kpi_marks` returns them) and marks the tenant loaded.
    pub fn load(&mut self, tenant: &str, marks: &[HashMap<String, f64>]) {
        let admitted = self.tenants.entry(tenant.to_owned()).or_default();
        for shard in marks {
            for (field, value) in shard {
                if *value <= 0.0 {
                    continue;
                }
                if let Some(name) = field.strip_prefix(TOUCHPOINT_MARK) {
                    admitted.touchpoints.insert(name.to_owned());
                } else if let Some(name) = field.strip_prefix(ACTION_MARK) {
                    admitted.actions.insert(name.to_owned());
                }
            }
        }
        admitted.loaded = true;
    }

    /// True once [`Vocabulary::load`] ran for `tenant`.
    pub fn is_loaded(&self, tenant: &str) -> bool {
        self.tenants.get(tenant).is_some_and(|a| a.loaded)
    }

    /// The touchpoint dimension value of `name`: itself if admitted (or admitted now, which
    /// records a mark in `out`), [`OTHER`] past the cap; empty stays empty.
    pub fn admit_touchpoint(&mut self, tenant: &str, name: &str, out: &mut Observations) -> String {
        let cap = self.max_touchpoints;
        let admitted = self.tenants.entry(tenant.to_owned()).or_default();
        admit(
            &mut admitted.touchpoints,
            cap,
            TOUCHPOINT_MARK,
            tenant,
            name,
            out,
        )
    }

    /// The action dimension value of `name`, as [`Vocabulary::admit_touchpoint`]; empty means
    /// no action.
    pub fn admit_action(&mut self, tenant: &str, name: &str, out: &mut Observations) -> String {
        let cap = self.max_actions;
        let admitted = self.tenants.entry(tenant.to_owned()).or_default();
        admit(&mut admitted.actions, cap, ACTION_MARK, tenant, name, out)
    }
}

/// The value of `name` among `names` (capped at `cap`), marking a newly admitted name as
/// `<prefix><name>`.
fn admit(
    names: &mut HashSet<String>,
    cap: usize,
    prefix: &str,
    tenant: &str,
    name: &str,
    out: &mut Observations,
) -> String {
    if name.is_empty() || names.contains(name) {
        return name.to_owned();
    }
    if names.len() >= cap {
        return OTHER.to_owned();
    }
    names.insert(name.to_owned());
    out.mark(tenant, format!("{prefix}{name}"), MarkOp::Set, 1.0);
    name.to_owned()
}

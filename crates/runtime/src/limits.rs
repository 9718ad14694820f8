//! Per-tenant request limits: a token bucket of request units per tenant (one unit per request,
//! one per event of a batch) and a largest request size, so that one tenant's flood is turned
//! away cheaply, before it reaches the service's work, instead of slowing every other tenant.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// Limits of a server (`[server.limits]`); 0 means no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Request units per second per tenant (a request, or an event of a batch); 0: no limit.
    pub tenant_rate_per_sec: u32,
    /// Units a tenant may spend at once after being idle; 0: one second's worth of the rate.
    pub tenant_burst: u32,
    /// Largest request, in encoded bytes; 0: only the service's own message limit applies.
    pub max_request_bytes: usize,
    /// Tenants with their own limits instead of the ones above.
    pub tenants: Vec<TenantLimits>,
}

/// The limits of one tenant, overriding the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimits {
    /// The tenant.
    pub tenant: String,
    /// Request units per second; 0: no limit.
    pub rate_per_sec: u32,
    /// Burst; 0: one second's worth of the rate.
    pub burst: u32,
    /// Largest request in bytes; 0: the default.
    pub max_request_bytes: usize,
}

/// Why a request was turned away.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The tenant's budget is spent: try again after this long.
    Rate {
        /// When enough units will have accrued.
        retry_after: Duration,
        /// The tenant's rate, for the message.
        rate_per_sec: u32,
    },
    /// The request needs more units than the tenant's burst: it can never pass whole.
    TooManyUnits {
        /// Units asked.
        units: u32,
        /// The burst.
        burst: u32,
    },
    /// The request is larger than allowed.
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    rate: f64,
    burst: f64,
    max_bytes: usize,
}

#[derive(Debug)]
struct Bucket {
    units: f64,
    at: Instant,
}

/// Buckets beyond which idle (full) ones are dropped: tenant ids come from requests, so the map
/// must not grow with every id a client makes up.
const MAX_BUCKETS: usize = 10_000;

/// The per-tenant limits of one server.
#[derive(Debug)]
pub struct TenantLimiter {
    default: Rule,
    overrides: HashMap<String, Rule>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl TenantLimiter {
    /// The limiter of `config`.
    pub fn new(config: &LimitsConfig) -> Self {
        let rule = |rate: u32, burst: u32, max_bytes: usize| Rule {
            rate: f64::from(rate),
            burst: f64::from(if burst == 0 { rate } else { burst }),
            max_bytes,
        };
        let default = rule(
            config.tenant_rate_per_sec,
            config.tenant_burst,
            config.max_request_bytes,
        );
        let overrides = config
            .tenants
            .iter()
            .map(|t| {
                let max_bytes = if t.max_request_bytes == 0 {
                    config.max_request_bytes
                } else {
                    t.max_request_bytes
                };
                (t.tenant.clone(), rule(t.rate_per_sec, t.burst, max_bytes))
            })
            .collect();
        Self {
            default,
            overrides,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn rule(&self, tenant: &str) -> Rule {
        self.overrides.get(tenant).copied().unwrap_or(self.default)
    }

    /// Checks a request of `bytes` against `tenant`'s size limit.
    pub fn check_size(&self, tenant: &str, bytes: usize) -> Result<(), Refusal> {
        let limit = self.rule(tenant).max_bytes;
        if limit > 0 && bytes > limit {
            return Err(Refusal::TooLarge { bytes, limit });
        }
        Ok(())
    }

    /// Takes `units` from `tenant`'s budget at `now`, or says when they will be there. A
    /// refused request takes nothing.
    pub fn take(&self, tenant: &str, units: u32, now: Instant) -> Result<(), Refusal> {
        let rule = self.rule(tenant);
        if rule.rate <= 0.0 {
            return Ok(());
        }
        let wanted = f64::from(units);
        if wanted > rule.burst {
            return Err(Refusal::TooManyUnits {
                units,
                burst: rule.burst as u32,
            });
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(tenant) {
            buckets.retain(|key, b| {
                let kept = self.rule(key);
                b.units + now.saturating_duration_since(b.at).as_secs_f64() * kept.rate < kept.burst
            });
        }
        let bucket = buckets.entry(tenant.to_owned()).or_insert(Bucket {
            units: rule.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.units = (bucket.units + elapsed * rule.rate).min(rule.burst);
        bucket.at = now;
        if bucket.units >= wanted {
            bucket.units -= wanted;
            return Ok(());
        }
        let missing = wanted - bucket.units;
        Err(Refusal::Rate {
            retry_after: Duration::from_secs_f64(missing / rule.rate).max(Duration::from_millis(1)),
            rate_per_sec: rule.rate as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, burst: u32) -> TenantLimiter {
        TenantLimiter::new(&LimitsConfig {
            tenant_rate_per_sec: rate,
            tenant_burst: burst,
            max_request_bytes: 1_000,
            tenants: vec![TenantLimits {
                tenant: "big".into(),
                rate_per_sec: 0,
                burst: 0,
                max_request_bytes: 5_000,
            }],
        })
    }

    #[test]
    fn a_tenant_spends_its_burst_then_waits_for_the_rate() {
        let l = limiter(100, 10);
        let t0 = Instant::now();
        for _ in 0..10 {
            l.take("a", 1, t0).unwrap();
        }
        let Err(Refusal::Rate { retry_after, .. }) = l.take("a", 1, t0) else {
            panic!("the 11th unit must wait");
        };
        assert_eq!(retry_after, Duration::from_millis(10));
        // Another tenant has its own bucket.
        l.take("b", 10, t0).unwrap();
        // 50 ms later, 5 units are back: a batch of 5 passes, one of 6 would not have.
        let later = t0 + Duration::from_millis(50);
        assert!(matches!(l.take("a", 6, later), Err(Refusal::Rate { .. })));
        l.take("a", 5, later).unwrap();
        assert!(matches!(
            l.take("a", 11, later + Duration::from_secs(10)),
            Err(Refusal::TooManyUnits {
                units: 11,
                burst: 10
            })
        ));
    }

    #[test]
    fn overrides_replace_the_defaults() {
        let l = limiter(1, 1);
        let t0 = Instant::now();
        for _ in 0..1_000 {
            l.take("big", 100, t0).unwrap();
        }
        assert_eq!(
            l.check_size("a", 1_001),
            Err(Refusal::TooLarge {
                bytes: 1_001,
                limit: 1_000
            })
        );
        l.check_size("big", 4_000).unwrap();
        l.check_size("a", 1_000).unwrap();
    }

    #[test]
    fn no_rate_means_no_limit_and_idle_buckets_are_dropped() {
        let l = limiter(0, 0);
        assert!(l.take("a", u32::MAX, Instant::now()).is_ok());
        let l = limiter(1_000, 1_000);
        let t0 = Instant::now();
        // The first buckets are full again a second later, when the map is full.
        for i in 0..MAX_BUCKETS + 10 {
            let at = if i < MAX_BUCKETS {
                t0
            } else {
                t0 + Duration::from_secs(1)
            };
            l.take(&format!("t{i}"), 1, at).unwrap();
        }
        let buckets = l
            .buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        // The sweep dropped the 10,000 full buckets; the 10 taken after it remain.
        assert_eq!(buckets, 10);
    }
}

//! Which tenants a request acts on, and how much of a tenant's request budget it uses: the
//! input of per-tenant authorisation and rate limits, declared here for every request type of
//! every service so that no RPC can be added without saying whose data it touches.

use crate::pb::{common::CustomerRef, decide, ingest, kpi, predict, profile};

/// A request that acts on one tenant or several.
pub trait TenantScoped {
    /// Calls `each(tenant, units)` for the tenants the request reads or writes, with the units
    /// of the tenant's rate budget it uses (one per request, one per event of a batch). A
    /// tenant may be reported more than once; an empty tenant id is reported as it is. A
    /// request that reports no tenant acts installation-wide (e.g. watching every tenant's
    /// signals), which only service credentials may do.
    fn tenant_usage(&self, each: &mut dyn FnMut(&str, u32));

    /// The tenants and their units, merged: each tenant once, in order of first appearance.
    fn tenant_totals(&self) -> Vec<(String, u32)> {
        let mut totals: Vec<(String, u32)> = Vec::new();
        self.tenant_usage(&mut |tenant, units| {
            // Batches are usually one tenant: the last entry is the one to add to.
            match totals.iter_mut().rev().find(|(t, _)| t == tenant) {
                Some((_, n)) => *n = n.saturating_add(units),
                None => totals.push((tenant.to_owned(), units)),
            }
        });
        totals
    }
}

fn customer_tenant(customer: Option<&CustomerRef>) -> &str {
    customer.map_or("", |c| c.tenant_id.as_str())
}

/// Requests naming their tenant in `tenant_id`.
macro_rules! by_tenant_id {
    ($($ty:ty),* $(,)?) => {$(
        impl TenantScoped for $ty {
            fn tenant_usage(&self, each: &mut dyn FnMut(&str, u32)) {
                each(&self.tenant_id, 1);
            }
        }
    )*};
}

/// Requests naming their tenant in `customer.tenant_id`.
macro_rules! by_customer {
    ($($ty:ty),* $(,)?) => {$(
        impl TenantScoped for $ty {
            fn tenant_usage(&self, each: &mut dyn FnMut(&str, u32)) {
                each(customer_tenant(self.customer.as_ref()), 1);
            }
        }
    )*};
}

by_tenant_id!(
    ingest::IdentifyRequest,
    ingest::ListRejectedRequest,
    predict::ListModelsRequest,
    predict::ActivateModelRequest,
    predict::RegisterModelRequest,
    decide::ReportOutcomeRequest,
    decide::ExplainDecisionRequest,
    decide::ReplayDecisionRequest,
    decide::GetConfigRequest,
    decide::PutConfigRequest,
    decide::WatchOutboundRequest,
    kpi::QueryMetricsRequest,
    kpi::GetExperimentRequest,
    kpi::ListMetricsRequest,
);

by_customer!(
    predict::ScoreRequest,
    decide::DecideRequest,
    profile::GetProfileRequest,
    profile::EraseCustomerRequest,
    profile::ReserveContactRequest,
    profile::CommitContactRequest,
    profile::ReleaseContactRequest,
);

impl TenantScoped for ingest::IngestRequest {
    fn tenant_usage(&self, each: &mut dyn FnMut(&str, u32)) {
        for event in &self.events {
            each(&event.tenant_id, 1);
        }
    }
}

impl TenantScoped for ingest::IngestStreamRequest {
    fn tenant_usage(&self, each: &mut dyn FnMut(&str, u32)) {
        for event in &self.events {
            each(&event.tenant_id, 1);
        }
    }
}

impl TenantScoped for profile::WatchSignalsRequest {
    fn tenant_usage(&self, each: &mut dyn FnMut(&str, u32)) {
        // Empty: every tenant's signals.
        if !self.tenant_id.is_empty() {
            each(&self.tenant_id, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::common::Event;

    fn event(tenant: &str) -> Event {
        Event {
            tenant_id: tenant.into(),
            ..Event::default()
        }
    }

    #[test]
    fn batches_cost_one_unit_per_event_and_merge_by_tenant() {
        let request = ingest::IngestRequest {
            events: vec![event("a"), event("a"), event("b"), event("a")],
        };
        assert_eq!(
            request.tenant_totals(),
            vec![("a".to_owned(), 3), ("b".to_owned(), 1)]
        );
        assert!(ingest::IngestRequest::default().tenant_totals().is_empty());
    }

    #[test]
    fn tenants_come_from_the_field_that_names_them() {
        let decide = decide::DecideRequest {
            customer: Some(CustomerRef {
                tenant_id: "acme".into(),
                customer_id: "c1".into(),
                anonymous_id: String::new(),
            }),
            ..Default::default()
        };
        assert_eq!(decide.tenant_totals(), vec![("acme".to_owned(), 1)]);
        // A missing customer names the empty tenant, which no tenant token matches.
        assert_eq!(
            profile::GetProfileRequest::default().tenant_totals(),
            vec![(String::new(), 1)]
        );
        let query = kpi::QueryMetricsRequest {
            tenant_id: "beta".into(),
            ..Default::default()
        };
        assert_eq!(query.tenant_totals(), vec![("beta".to_owned(), 1)]);
    }

    #[test]
    fn watching_every_tenant_names_none() {
        assert!(
            profile::WatchSignalsRequest::default()
                .tenant_totals()
                .is_empty()
        );
        let one = profile::WatchSignalsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        };
        assert_eq!(one.tenant_totals(), vec![("acme".to_owned(), 1)]);
    }
}

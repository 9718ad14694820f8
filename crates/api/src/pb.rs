//! Generated protobuf messages and gRPC stubs, one module per proto package.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `iee.*` packages.
pub mod iee {
    /// `iee.common.*`.
    pub mod common {
        /// `iee.common.v1`: the event and other shared messages.
        pub mod v1 {
            tonic::include_proto!("iee.common.v1");
        }
    }
    /// `iee.ingest.*`.
    pub mod ingest {
        /// `iee.ingest.v1`: TouchpointService.
        pub mod v1 {
            tonic::include_proto!("iee.ingest.v1");
        }
    }
    /// `iee.profile.*`.
    pub mod profile {
        /// `iee.profile.v1`: ProfileService.
        pub mod v1 {
            tonic::include_proto!("iee.profile.v1");
        }
    }
    /// `iee.predict.*`.
    pub mod predict {
        /// `iee.predict.v1`: PredictionService.
        pub mod v1 {
            tonic::include_proto!("iee.predict.v1");
        }
    }
    /// `iee.decide.*`.
    pub mod decide {
        /// `iee.decide.v1`: DecisionService.
        pub mod v1 {
            tonic::include_proto!("iee.decide.v1");
        }
    }
    /// `iee.kpi.*`.
    pub mod kpi {
        /// `iee.kpi.v1`: KpiService.
        pub mod v1 {
            tonic::include_proto!("iee.kpi.v1");
        }
    }
}

pub use iee::common::v1 as common;
pub use iee::decide::v1 as decide;
pub use iee::ingest::v1 as ingest;
pub use iee::kpi::v1 as kpi;
pub use iee::predict::v1 as predict;
pub use iee::profile::v1 as profile;

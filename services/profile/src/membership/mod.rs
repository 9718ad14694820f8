//! Where profile nodes find each other: heartbeats into the store, or (feature `kube`) the
//! EndpointSlices of the headless Service, watched through the Kubernetes API.

#[cfg(feature = "kube")]
mod kubernetes;
mod select;
#[cfg(feature = "kube")]
mod view;

#[cfg(feature = "kube")]
pub use kubernetes::KubeMembership;
pub use select::with_membership;

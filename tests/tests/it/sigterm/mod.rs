//! SIGTERM as Kubernetes sends it, to every server binary: health turns NOT_SERVING at once
//! while calls are still served for the grace period, then the listener closes, calls drain and
//! the process exits 0; what a service hands on (profile shards, KPI counts) is intact.

mod processes;
mod standalone;
mod watch;

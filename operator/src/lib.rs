//! The Kubernetes operator for the `stash.appscode.com` resources.
//!
//! Its CRD types, controllers and pure builders of desired objects land with the
//! operator issues; the engine it drives lives in `stash-agent`.

pub mod image;

//! The standard stack of decorators around a store:
//! `limit(retry(timeout(store)))`: each request is bounded in time, a timed-out or
//! otherwise transiently failed request is retried with backoff, and the number of
//! logical requests in flight (retries included) is capped.

use std::{sync::Arc, time::Duration};

use super::{
    location::Location, Backend, LimitBackend, RetryBackend, RetryPolicy, TimeoutBackend,
    TimeoutPolicy,
};

/// Which decorators to put around a store; `None` leaves one out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wrapping {
    /// Per-request time bound (innermost).
    pub timeout: Option<TimeoutPolicy>,
    /// Retries of transient failures.
    pub retry: Option<RetryPolicy>,
    /// Requests in flight at most (outermost).
    pub connections: Option<usize>,
}

impl Wrapping {
    /// No decorators.
    pub fn none() -> Self {
        Wrapping::default()
    }

    /// The defaults for a location: cloud stores get the default timeout and retry
    /// policies and 8 connections; a local directory a short retry (local failures
    /// are rarely transient) and 32 requests in flight; `memory:` nothing.
    pub fn for_location(loc: &Location) -> Self {
        match loc {
            Location::Memory(_) => Wrapping::none(),
            Location::Local(_) => Wrapping {
                timeout: Some(TimeoutPolicy::default()),
                retry: Some(RetryPolicy {
                    max_attempts: 3,
                    base_delay: Duration::from_millis(100),
                    max_delay: Duration::from_secs(1),
                }),
                connections: Some(32),
            },
            Location::S3(_) | Location::Gcs { .. } | Location::Azure { .. } => Wrapping {
                timeout: Some(TimeoutPolicy::default()),
                retry: Some(RetryPolicy::default()),
                connections: Some(8),
            },
        }
    }

    /// Puts the decorators around `inner`.
    pub fn wrap(&self, inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        let mut b = inner;
        if let Some(t) = &self.timeout {
            b = Arc::new(TimeoutBackend::new(b, t.clone()));
        }
        if let Some(r) = &self.retry {
            b = Arc::new(RetryBackend::new(b, r.clone()));
        }
        if let Some(n) = self.connections {
            b = Arc::new(LimitBackend::new(b, n));
        }
        b
    }
}

//! Storage backends against real servers (moto for S3, Azurite for Azure,
//! fake-gcs-server for GCS) and through injected faults. The servers are started by
//! the tests on free loopback ports and killed at the end; a missing server program
//! is a failure that names the install command.

mod backend_azure;
mod backend_faults;
mod backend_gcs;
mod backend_s3;
mod backend_support;

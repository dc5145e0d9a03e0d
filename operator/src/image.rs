//! Which container image is "ours": the image whose containers run the `stash` binary.
//!
//! The operator puts this image into the sidecars, init containers and Jobs it builds, and
//! the test cluster's stand-in kubelet runs containers of this image as local `stash`
//! processes. Both read the one setting below, so they cannot disagree.

/// The environment variable that overrides [`DEFAULT_IMAGE`].
pub const IMAGE_ENV: &str = "STASH_IMAGE";

/// The image used when [`IMAGE_ENV`] is not set.
pub const DEFAULT_IMAGE: &str = concat!("stash.appscode.dev/stash:v", env!("CARGO_PKG_VERSION"));

/// The image in effect: [`IMAGE_ENV`] when set and non-empty, else [`DEFAULT_IMAGE`].
pub fn image() -> String {
    std::env::var(IMAGE_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string())
}

//! The metadata a reconciliation cannot go on without. Objects from a watch carry
//! their namespace and uid, but an object built by hand, a replayed cache entry or a
//! future API change may not: an empty namespace would send the next call to the
//! cluster-wide path and an empty uid would merge field managers, so a missing field
//! is an [`Error`] naming the object, never a silent default.

use kube::{Resource, ResourceExt};

use super::Error;

/// `object`'s namespace, or [`Error::MissingMetadata`].
pub fn namespace<K: Resource<DynamicType = ()>>(object: &K) -> Result<String, Error> {
    object
        .namespace()
        .ok_or_else(|| missing(object, "namespace"))
}

/// `object`'s name, or [`Error::MissingMetadata`] (`name_any` would give its
/// `generateName` prefix, which names no object).
pub fn name<K: Resource<DynamicType = ()>>(object: &K) -> Result<String, Error> {
    object
        .meta()
        .name
        .clone()
        .ok_or_else(|| missing(object, "name"))
}

/// `object`'s uid, or [`Error::MissingMetadata`].
pub fn uid<K: Resource<DynamicType = ()>>(object: &K) -> Result<String, Error> {
    object.uid().ok_or_else(|| missing(object, "uid"))
}

fn missing<K: Resource<DynamicType = ()>>(object: &K, field: &'static str) -> Error {
    Error::MissingMetadata {
        kind: K::kind(&()).into_owned(),
        name: object
            .meta()
            .name
            .clone()
            .unwrap_or_else(|| "<unnamed>".into()),
        field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::backup_configuration::BackupConfiguration;

    #[test]
    fn a_missing_field_is_an_error_naming_the_object() {
        let mut bc = BackupConfiguration::new("nightly", Default::default());
        let err = namespace(&bc).unwrap_err().to_string();
        assert_eq!(name(&bc).unwrap(), "nightly");
        assert_eq!(
            err,
            "BackupConfiguration nightly: metadata.namespace is missing"
        );
        assert_eq!(
            uid(&bc).unwrap_err().to_string(),
            "BackupConfiguration nightly: metadata.uid is missing"
        );
        bc.metadata.namespace = Some("demo".into());
        bc.metadata.uid = Some("u-1".into());
        assert_eq!(namespace(&bc).unwrap(), "demo");
        assert_eq!(uid(&bc).unwrap(), "u-1");
        bc.metadata.name = None;
        assert_eq!(
            name(&bc).unwrap_err().to_string(),
            "BackupConfiguration <unnamed>: metadata.name is missing"
        );
    }
}

//! Keeping the Role of the operator's processes in users' pods ([`crate::rbac`]) and a
//! workload's binding to it in place.

use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::{
    api::{Patch, PatchParams},
    Api, Resource,
};

use super::{Context, Error, MANAGER};
use crate::rbac;

/// The Role and `account`'s binding in `owner`'s namespace, each owned (among others)
/// by every configuration and session that needs it, so the garbage collector removes
/// them with the last one.
pub async fn ensure<K>(owner: &K, ctx: &Context, account: &str) -> Result<(), Error>
where
    K: Resource<DynamicType = ()>,
{
    let ns = super::meta::namespace(owner)?;
    let reference = owner.controller_owner_ref(&()).map(|mut o| {
        o.controller = None;
        o.block_owner_deletion = None;
        o
    });
    // One field manager per owner: each one's owner reference is its own entry of the
    // list, and leaving never takes another's away.
    let pp = PatchParams::apply(&format!("{MANAGER}-{}", super::meta::uid(owner)?)).force();
    let mut role = rbac::role(&ns);
    role.metadata.owner_references = reference.clone().map(|o| vec![o]);
    Api::<Role>::namespaced(ctx.client.clone(), &ns)
        .patch(rbac::ROLE, &pp, &Patch::Apply(&role))
        .await?;
    let mut binding = rbac::binding(&ns, account);
    binding.metadata.owner_references = reference.map(|o| vec![o]);
    Api::<RoleBinding>::namespaced(ctx.client.clone(), &ns)
        .patch(&rbac::binding_name(account), &pp, &Patch::Apply(&binding))
        .await?;
    Ok(())
}

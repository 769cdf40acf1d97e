//! The caller of a request that came over the control socket (`crate::control`, which
//! puts the [`SocketPeer`] of each of its connections in the connection's data): the socket's rule decides,
//! whatever credentials the request carries (Basic, the login cookie or a Bearer token are
//! not looked at), because the kernel's word on the peer is stronger than any of them.
//!
//! An admitted peer is an admin of every contact center: it sees every service the daemon
//! supervises now, including those a reload just added.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::dev::ServiceRequest;
use actix_web::web;

use super::ApiState;
use super::error::ApiError;
use crate::auth::Caller;
use crate::config::auth::UserRole;

/// The peer of one control-socket connection, as the kernel names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SocketPeer {
    pub uid: u32,
    pub gid: u32,
    /// Whether the socket's rule let it in (`crate::control::peer::AdmissionRule`).
    pub admitted: bool,
}

/// What a peer outside the rule is told (with its uid).
pub(crate) const REFUSED: &str = "the control socket is for root and the servicewatch group";

/// The caller the control socket establishes for `req`: `None` when the request did not
/// come over the socket (the login decides), else the admin caller, or the refusal.
pub(crate) fn established(req: &ServiceRequest) -> Option<Result<Caller, ApiError>> {
    let peer = *req.conn_data::<SocketPeer>()?;
    if !peer.admitted {
        return Some(Err(ApiError::PermissionDenied(format!(
            "{REFUSED}; uid {} is neither root, the daemon's user nor in its group",
            peer.uid
        ))));
    }
    let features = match req.app_data::<web::Data<ApiState>>() {
        Some(state) => every_feature(&state.snapshot.load()),
        None => BTreeSet::new(),
    };
    Some(Ok(admin(peer.uid, features)))
}

/// Every feature the supervised services need, those waiting for their first probe too.
fn every_feature(snapshot: &crate::snapshot::Snapshot) -> BTreeSet<String> {
    snapshot
        .services()
        .iter()
        .map(|s| s.feature.clone())
        .chain(snapshot.all_pending().map(|p| p.service.feature.clone()))
        .collect()
}

/// An admin seeing `features`, named for the peer's uid (in logs and audit: `uid:0`), of no
/// contact center (what it creates for one, such as an API token, names its center).
fn admin(uid: u32, features: BTreeSet<String>) -> Caller {
    Caller::new(
        Arc::from(format!("uid:{uid}")),
        BTreeSet::from([UserRole::Admin]),
        "",
        features,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::service::ServiceState;
    use crate::snapshot::{PublishedService, Snapshot};

    #[test]
    fn the_admin_sees_every_supervised_feature() {
        let services = ["api-voice", "api-multimedia", "api-voice"]
            .into_iter()
            .map(|f| {
                Arc::new(PublishedService::new(
                    f,
                    ServiceState::Active,
                    Default::default(),
                ))
            })
            .collect();
        let caller = admin(0, every_feature(&Snapshot::new(services)));
        assert!(caller.sees("api-voice") && caller.sees("api-multimedia"));
        assert!(caller.roles.contains(&UserRole::Admin) && caller.may_read_services());
        assert_eq!(&*caller.user, "uid:0");
    }
}

//! The one route decision for every call the gateway places (RFC 3261 §16-style
//! request routing by dialed number): the B2BUA's B leg in the call supervisor, and the
//! fax, device and ingest calls of `ua`. A leaf: it reads the configuration and the trunks'
//! live status from the call context and names the outcome with [`Routing`].

use switchboard_call::CallFailure;
use switchboard_config::RouteTarget;

use crate::call_msg::Routing;
use crate::context::CallContext;

/// Where a call that is not for a local target goes: the route's trunk, if it is
/// configured and up. The one route decision for every call the gateway places (the
/// B2BUA's B leg here, fax, device and ingest calls in `ua`).
pub fn trunk_routing(
    ctx: &CallContext,
    route: Option<switchboard_config::RouteConfig>,
    number: Option<String>,
) -> Routing {
    let (Some(route), Some(number)) = (route, number) else {
        return Routing::Refused(CallFailure::NoRoute);
    };
    let RouteTarget::Trunk(name) = &route.to else {
        // A local target cannot be dialled through a trunk (the supervisor hands those
        // to a `UaCall` before asking).
        return Routing::Refused(CallFailure::NoRoute);
    };
    let (Some(trunk), Some(handle)) = (ctx.config.trunk(name), ctx.trunks.get(name)) else {
        return Routing::Refused(CallFailure::UnknownTrunk);
    };
    if handle.status.borrow().is_down() {
        return Routing::Refused(CallFailure::TrunkDown);
    }
    Routing::Trunk {
        trunk: Box::new(trunk.clone()),
        route: Box::new(route),
        number,
    }
}

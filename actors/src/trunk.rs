//! The `Trunk` actor: one per configured trunk. When the trunk is monitored (`qualify`) it
//! keeps its status (up/down) with OPTIONS keepalives (RFC 3261 §11); an unmonitored trunk
//! is never probed nor marked down, so every call routed to it tries it. When configured, it
//! registers with the provider (RFC 3261 §10) answering digest challenges
//! (RFC 7616). Calls read the status through a watch channel and report a
//! trunk that let an INVITE time out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use rsip::{Header, Method};
use switchboard_config::TrunkConfig;
use switchboard_sip::digest::{self, Challenge};
use switchboard_sip::message::{self, MessageExt};
use switchboard_sip::transport::Peer;
use switchboard_storage::{now_unix_ms, rfc3339};
use tokio::sync::watch;

use crate::endpoint_msg::{EndpointMsg, Owner};
use crate::sip_event::SipEvent;
pub use crate::trunk_handle::{TrunkMsg, TrunkState, TrunkStatus};

/// Retry delay after a failed registration.
const REGISTER_RETRY: Duration = Duration::from_secs(30);

/// Arguments of a trunk actor.
#[derive(Debug)]
pub struct TrunkArgs {
    /// Its configuration.
    pub config: TrunkConfig,
    /// The SIP endpoint.
    pub endpoint: ActorRef<EndpointMsg>,
    /// Where its status is published.
    pub status: Arc<watch::Sender<TrunkStatus>>,
    /// Our Via sent-by.
    pub via_host: String,
    /// Our Contact URI.
    pub contact: String,
    /// User-Agent value.
    pub user_agent: String,
}

/// State of a trunk actor.
pub struct TrunkActorState {
    args: TrunkArgs,
    peer: Peer,
    options_call_id: String,
    register_call_id: String,
    from_tag: String,
    cseq: u32,
    options_pending: Option<(String, Instant)>,
    next_options: Option<Instant>,
    register_pending: Option<(String, rsip::Request)>,
    next_register: Option<Instant>,
    auth_tries: u8,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

/// The trunk actor.
#[derive(Debug, Default)]
pub struct Trunk;

/// The initial status of a trunk.
pub fn initial_status(t: &TrunkConfig) -> TrunkStatus {
    TrunkStatus {
        name: t.name.clone(),
        address: t.address.to_string(),
        transport: crate::sip_contact::sip_transport(t.transport).as_str(),
        state: if t.monitored() {
            TrunkState::Unknown
        } else {
            TrunkState::Unmonitored
        },
        monitored: t.monitored(),
        keepalive_secs: t.monitored().then_some(t.keepalive.as_secs()),
        last_reply: None,
        registered: t.register.then_some(false),
        last_change: None,
        last_error: None,
        rtt_ms: None,
    }
}

impl Actor for Trunk {
    type Msg = TrunkMsg;
    type State = TrunkActorState;
    type Arguments = TrunkArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<TrunkMsg>,
        args: TrunkArgs,
    ) -> Result<TrunkActorState, ActorProcessingErr> {
        let host = args
            .via_host
            .split(':')
            .next()
            .unwrap_or("localhost")
            .to_string();
        let options_call_id = format!("opt-{}-{}@{}", args.config.name, message::new_tag(), host);
        let register_call_id = format!("reg-{}-{}@{}", args.config.name, message::new_tag(), host);
        for call_id in [&options_call_id, &register_call_id] {
            args.endpoint.send_message(EndpointMsg::Register {
                call_id: call_id.clone(),
                owner: Owner::Trunk(myself.clone()),
            })?;
        }
        metrics::gauge!("switchboard_trunk_monitored", "trunk" => args.config.name.clone())
            .set(if args.config.monitored() { 1.0 } else { 0.0 });
        let now = Instant::now();
        let peer = Peer {
            addr: args.config.address,
            transport: crate::sip_contact::sip_transport(args.config.transport),
        };
        Ok(TrunkActorState {
            next_options: args.config.monitored().then_some(now),
            next_register: args.config.register.then_some(now),
            peer,
            options_call_id,
            register_call_id,
            from_tag: message::new_tag(),
            cseq: 0,
            options_pending: None,
            register_pending: None,
            auth_tries: 0,
            ticker: None,
            args,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<TrunkMsg>,
        state: &mut TrunkActorState,
    ) -> Result<(), ActorProcessingErr> {
        state.ticker = Some(myself.send_interval(Duration::from_secs(1), || TrunkMsg::Tick));
        state.tick(Instant::now());
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<TrunkMsg>,
        state: &mut TrunkActorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(t) = state.ticker.take() {
            t.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<TrunkMsg>,
        msg: TrunkMsg,
        state: &mut TrunkActorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TrunkMsg::Tick => state.tick(Instant::now()),
            TrunkMsg::Unreachable => {
                state.set_state(TrunkState::Down, Some("INVITE timed out".into()))
            }
            TrunkMsg::Sip(SipEvent::Response { response }) => state.on_response(response),
            TrunkMsg::Sip(SipEvent::Timeout { branch }) => state.on_timeout(&branch),
            TrunkMsg::Sip(_) => {}
        }
        Ok(())
    }
}

impl TrunkActorState {
    fn set_state(&mut self, new: TrunkState, error: Option<String>) {
        let name = self.args.config.name.clone();
        if !self.args.config.monitored() {
            // Nothing marks an unmonitored trunk up or down; the error is still shown.
            if error.is_some() {
                self.args.status.send_modify(|s| s.last_error = error);
            }
            return;
        }
        self.args.status.send_if_modified(|s| {
            let changed = s.state != new;
            if changed {
                s.state = new;
                s.last_change = Some(rfc3339(now_unix_ms()));
                tracing::info!(trunk = %name, state = ?new, "trunk state changed");
            }
            if error.is_some() {
                s.last_error = error.clone();
            }
            changed
        });
        metrics::gauge!("switchboard_trunk_up", "trunk" => name).set(if new == TrunkState::Up {
            1.0
        } else {
            0.0
        });
    }

    fn tick(&mut self, now: Instant) {
        if self.next_options.is_some_and(|t| t <= now) && self.options_pending.is_none() {
            self.send_options(now);
            self.next_options = Some(now + self.args.config.keepalive);
        }
        if self.next_register.is_some_and(|t| t <= now) && self.register_pending.is_none() {
            self.auth_tries = 0;
            self.send_register(None);
            self.next_register = None;
        }
    }

    fn base_request(
        &mut self,
        method: Method,
        uri: &str,
        call_id: &str,
        from_user: &str,
        to: &str,
    ) -> rsip::Request {
        self.cseq += 1;
        let branch = message::new_branch();
        let mut headers = rsip::Headers::default();
        headers.push(Header::Via(
            format!(
                "SIP/2.0/{} {};branch={};rport",
                self.peer.transport.as_str(),
                self.args.via_host,
                branch
            )
            .into(),
        ));
        headers.push(Header::MaxForwards("70".into()));
        headers.push(Header::From(
            format!(
                "<sip:{}@{}>;tag={}",
                from_user,
                self.domain(),
                self.from_tag
            )
            .into(),
        ));
        headers.push(Header::To(format!("<{to}>").into()));
        headers.push(Header::CallId(call_id.into()));
        headers.push(Header::CSeq(format!("{} {}", self.cseq, method).into()));
        headers.push(Header::UserAgent(self.args.user_agent.clone().into()));
        rsip::Request {
            method,
            uri: rsip::Uri::try_from(uri).unwrap_or_default(),
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        }
    }

    fn domain(&self) -> String {
        self.args
            .config
            .from_domain
            .clone()
            .unwrap_or_else(|| self.args.config.host.clone())
    }

    fn send_options(&mut self, now: Instant) {
        let uri = format!("sip:{}", self.args.config.address);
        let call_id = self.options_call_id.clone();
        let req = self.base_request(Method::Options, &uri, &call_id, "switchboard", &uri);
        if let Some(b) = req.top_via_branch() {
            self.options_pending = Some((b, now));
        }
        let _ = self.args.endpoint.send_message(EndpointMsg::SendRequest {
            peer: self.peer,
            request: req,
        });
    }

    fn send_register(&mut self, auth: Option<(bool, String)>) {
        let user = self.args.config.username.clone().unwrap_or_default();
        let uri = format!("sip:{}", self.domain());
        let aor = format!("sip:{}@{}", user, self.domain());
        let call_id = self.register_call_id.clone();
        let mut req = self.base_request(Method::Register, &uri, &call_id, &user, &aor);
        req.headers.push(Header::Contact(
            format!(
                "<{}>",
                self.args
                    .contact
                    .replace("switchboard@", &format!("{user}@"))
            )
            .into(),
        ));
        req.headers.push(Header::Expires(
            self.args.config.register_expires.to_string().into(),
        ));
        if let Some((proxy, value)) = auth {
            req.headers.push(if proxy {
                Header::ProxyAuthorization(value.into())
            } else {
                Header::Authorization(value.into())
            });
        }
        if let Some(b) = req.top_via_branch() {
            self.register_pending = Some((b, req.clone()));
        }
        let _ = self.args.endpoint.send_message(EndpointMsg::SendRequest {
            peer: self.peer,
            request: req,
        });
    }

    fn on_response(&mut self, resp: rsip::Response) {
        let code = resp.status_code.code();
        if code < 200 {
            return;
        }
        let Some(branch) = resp.top_via_branch() else {
            return;
        };
        if self
            .options_pending
            .as_ref()
            .is_some_and(|(b, _)| *b == branch)
        {
            if let Some((_, sent)) = self.options_pending.take() {
                let rtt = sent.elapsed().as_millis() as u64;
                let at = rfc3339(now_unix_ms());
                self.args.status.send_modify(|s| {
                    s.rtt_ms = Some(rtt);
                    s.last_reply = Some(at);
                });
            }
            // Any answer, even an error, shows the trunk is alive.
            self.set_state(TrunkState::Up, None);
            return;
        }
        if self
            .register_pending
            .as_ref()
            .is_some_and(|(b, _)| *b == branch)
        {
            let Some((_, sent)) = self.register_pending.take() else {
                return;
            };
            self.set_state(TrunkState::Up, None);
            self.on_register_response(&resp, &sent, code);
        }
    }

    fn on_register_response(&mut self, resp: &rsip::Response, sent: &rsip::Request, code: u16) {
        let name = self.args.config.name.clone();
        match code {
            200..=299 => {
                let expires = resp
                    .header_value("Expires")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(u64::from(self.args.config.register_expires))
                    .max(10);
                self.next_register = Some(Instant::now() + Duration::from_secs(expires * 8 / 10));
                self.args.status.send_modify(|s| {
                    s.registered = Some(true);
                    s.last_error = None;
                });
                metrics::gauge!("switchboard_trunk_registered", "trunk" => name.clone()).set(1.0);
                tracing::info!(trunk = %name, expires, "registered");
            }
            401 | 407 if self.auth_tries < 2 => {
                let proxy = code == 407;
                let header = if proxy {
                    "Proxy-Authenticate"
                } else {
                    "WWW-Authenticate"
                };
                let (Some(user), Some(pass)) = (
                    self.args.config.username.clone(),
                    self.args.config.password.clone(),
                ) else {
                    return self.register_failed(format!("{code} and no credentials"));
                };
                let Some(ch) = resp
                    .header_value(header)
                    .and_then(|v| Challenge::parse(&v).ok())
                else {
                    return self.register_failed(format!("{code} without a usable challenge"));
                };
                self.auth_tries += 1;
                let uri = sent.uri.to_string();
                let value = digest::authorization(
                    &ch,
                    &user,
                    pass.expose(),
                    "REGISTER",
                    &uri,
                    1,
                    &message::new_tag(),
                );
                self.send_register(Some((proxy, value)));
            }
            _ => self.register_failed(format!("REGISTER answered {code}")),
        }
    }

    fn register_failed(&mut self, why: String) {
        tracing::warn!(trunk = %self.args.config.name, %why, "registration failed");
        self.args.status.send_modify(|s| {
            s.registered = Some(false);
            s.last_error = Some(why.clone());
        });
        metrics::gauge!("switchboard_trunk_registered", "trunk" => self.args.config.name.clone())
            .set(0.0);
        self.next_register = Some(Instant::now() + REGISTER_RETRY);
    }

    fn on_timeout(&mut self, branch: &str) {
        if self
            .options_pending
            .as_ref()
            .is_some_and(|(b, _)| b == branch)
        {
            self.options_pending = None;
            self.set_state(TrunkState::Down, Some("OPTIONS timed out".into()));
        } else if self
            .register_pending
            .as_ref()
            .is_some_and(|(b, _)| b == branch)
        {
            self.register_pending = None;
            self.set_state(TrunkState::Down, Some("REGISTER timed out".into()));
            self.register_failed("REGISTER timed out".into());
        }
    }
}

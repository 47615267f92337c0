//! Local call targets: what a [`UaCall`](crate::ua::UaCall) in audio mode is connected to.
//! `app:NAME` streams the call to an app over WebSocket ([`crate::audio::app`]);
//! `device:ID` rings an ESP32 over MQTT ([`crate::devices::voice`]). Media streams from the
//! ingest server reach new calls through [`ingest_to_call`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use switchboard_config::AppConfig;
use switchboard_media::streams::Track;

use crate::audio::app::{AppStream, AppStreamArgs};
use crate::audio::leg::{Leg, LegCommand, LegEvent};
use crate::call_msg::{CallId, CallMsg};
use crate::context::CallContext;
use crate::supervisor_msg::SupervisorMsg;
use crate::ua_event::{Listener, UaEvent};
use switchboard_call::HangupCause;

/// Ask the call supervisor to end call `id` with `cause`.
pub fn end_call(ctx: &CallContext, id: &CallId, cause: HangupCause) {
    let _ = ctx
        .supervisor
        .send_message(SupervisorMsg::Tell(id.clone(), CallMsg::End(cause)));
}

/// The listener of a call answered for an app: on audio, start the RTP leg and the stream;
/// on a media change, re-point the leg; at the end, send `stop`.
pub fn app_listener(
    ctx: &Arc<CallContext>,
    app: AppConfig,
    parameters: BTreeMap<String, String>,
    call: CallId,
    from: String,
    to: String,
) -> Listener {
    let slot: Mutex<Option<AppStream>> = Mutex::new(None);
    let ctx = Arc::clone(ctx);
    Listener::new(move |event| {
        let Ok(mut slot) = slot.lock() else { return };
        match event {
            UaEvent::Audio(media) => {
                if let Some(stream) = slot.as_ref() {
                    stream.remote_changed(media.remote);
                    return;
                }
                let leg = Leg::for_call(media, app.max_playout_ms);
                let leg = match leg {
                    Ok(l) => l,
                    Err(err) => {
                        tracing::error!(call = %call, %err, "cannot start the audio leg");
                        return end_call(&ctx, &call, HangupCause::MediaError);
                    }
                };
                let args = AppStreamArgs {
                    app: app.clone(),
                    parameters: parameters.clone(),
                    call_id: call.to_string(),
                    from: from.clone(),
                    to: to.clone(),
                    kind: "app",
                    tracks: vec![Track::Inbound],
                };
                let (ctx2, call2) = (Arc::clone(&ctx), call.clone());
                let on_gone = Box::new(move |_why| end_call(&ctx2, &call2, HangupCause::AppGone));
                *slot = Some(AppStream::spawn(args, leg, &ctx.streams, on_gone));
            }
            UaEvent::Ended(_) => {
                if let Some(stream) = slot.take() {
                    stream.stop("call ended");
                }
            }
            _ => {}
        }
    })
}

/// Carry audio both ways between two legs until either ends (digits and marks stay on
/// their side).
pub async fn pump(mut a: Leg, mut b: Leg) {
    loop {
        tokio::select! {
            ev = a.events.recv() => match ev {
                Some(LegEvent::Audio { pcm, .. }) => {
                    let _ = b.commands.try_send(LegCommand::Play(pcm));
                }
                Some(_) => {}
                None => break,
            },
            ev = b.events.recv() => match ev {
                Some(LegEvent::Audio { pcm, .. }) => {
                    let _ = a.commands.try_send(LegCommand::Play(pcm));
                }
                Some(_) => {}
                None => break,
            },
        }
    }
}

/// Bridge a media stream from the ingest server (`stream`) to a new call to `number`
/// through the dial plan. `close` ends the stream when the call ends; the returned id ends
/// the call when the stream does.
pub async fn ingest_to_call(
    ctx: &Arc<CallContext>,
    number: String,
    from: String,
    stream: Leg,
    close: tokio::sync::oneshot::Sender<&'static str>,
) -> Option<CallId> {
    let call = CallId::new();
    let stream = Mutex::new(Some(stream));
    let close = Mutex::new(Some(close));
    let id = call.clone();
    let listener = Listener::new(move |event| match event {
        UaEvent::Audio(media) => {
            let Some(stream) = stream.lock().ok().and_then(|mut s| s.take()) else {
                return;
            };
            let leg = Leg::for_call(media, 2000);
            match leg {
                Ok(leg) => {
                    tokio::spawn(pump(leg, stream));
                }
                Err(err) => tracing::error!(call = %id, %err, "cannot start the audio leg"),
            }
        }
        UaEvent::Ended(_) => {
            if let Some(c) = close.lock().ok().and_then(|mut c| c.take()) {
                let _ = c.send("call ended");
            }
        }
        _ => {}
    });
    let placed = ractor::call_t!(
        ctx.supervisor,
        |reply| SupervisorMsg::Originate {
            id: call.clone(),
            to: number,
            src: from,
            listener,
            mode: crate::ua_event::UaMode::Audio { ring_first: false },
            reply,
        },
        2_000
    );
    matches!(placed, Ok(true)).then_some(call)
}

//! The session's decisions, as pure functions over plain values, so that each is tested
//! without actors, transports or timers: when a `/meta/connect` is answered at once and when
//! it is held, and when the session must (un)register with the registry.

/// The transport a connect came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    LongPolling,
}

/// What the session knows when a connect arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectContext {
    pub transport: Transport,
    /// No connect has been answered yet: this is the client's first.
    pub first: bool,
    /// A snapshot was asked for and has not arrived yet.
    pub snapshot_pending: bool,
    /// The connect is alone in its batch (a long-polling batch with other messages must be
    /// answered at once, or their replies would wait with it).
    pub alone: bool,
    /// Messages waiting for the client.
    pub queued: usize,
}

/// Whether a connect is answered at once (`true`) or held until there is something to
/// deliver or it times out.
///
/// - A first connect is answered at once, so the client learns it is connected (CometD
///   clients wait for it before they subscribe), except over long-polling while a snapshot
///   is on its way: then the connect waits for it, so the client finds the snapshot in this
///   connect's answer rather than one connect later.
/// - Over WebSocket, every later connect is held: messages go out as frames of their own.
/// - Over long-polling, a later connect is answered at once when it carries other messages'
///   replies or there is something queued; otherwise it is held.
pub fn answer_connect_now(c: ConnectContext) -> bool {
    match c.transport {
        Transport::WebSocket => c.first,
        Transport::LongPolling => (c.first && !c.snapshot_pending) || !c.alone || c.queued > 0,
    }
}

/// What the session tells the registry after its subscriptions changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Subscribe to service changes, with a snapshot of every service first or not.
    Subscribe {
        snapshot: bool,
    },
    Unsubscribe,
    Unchanged,
}

/// Whether the session (un)registers: `wants` says whether its subscriptions now match the
/// services topic, `registered` whether it is registered, `snapshot` whether this subscribe
/// asked for one. A snapshot asked for again while registered is sent again.
pub fn registration(wants: bool, registered: bool, snapshot: bool) -> Registration {
    match (wants, registered) {
        (true, false) => Registration::Subscribe { snapshot },
        (true, true) if snapshot => Registration::Subscribe { snapshot },
        (false, true) => Registration::Unsubscribe,
        _ => Registration::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(transport: Transport) -> ConnectContext {
        ConnectContext {
            transport,
            first: false,
            snapshot_pending: false,
            alone: true,
            queued: 0,
        }
    }

    #[test]
    fn a_websocket_answers_the_first_connect_and_holds_the_others() {
        let ws = ctx(Transport::WebSocket);
        assert!(answer_connect_now(ConnectContext { first: true, ..ws }));
        assert!(answer_connect_now(ConnectContext {
            first: true,
            snapshot_pending: true,
            ..ws
        }));
        assert!(!answer_connect_now(ws));
        assert!(
            !answer_connect_now(ConnectContext { queued: 3, ..ws }),
            "queued messages go out as frames, not with the connect"
        );
    }

    #[test]
    fn long_polling_holds_only_an_idle_lone_connect() {
        let lp = ctx(Transport::LongPolling);
        assert!(!answer_connect_now(lp), "nothing to say: held");
        assert!(answer_connect_now(ConnectContext { queued: 1, ..lp }));
        assert!(answer_connect_now(ConnectContext { alone: false, ..lp }));
        assert!(answer_connect_now(ConnectContext { first: true, ..lp }));
        assert!(
            !answer_connect_now(ConnectContext {
                first: true,
                snapshot_pending: true,
                ..lp
            }),
            "the first connect waits for the snapshot on its way"
        );
    }

    #[test]
    fn registration_follows_the_subscriptions() {
        assert_eq!(
            registration(true, false, false),
            Registration::Subscribe { snapshot: false }
        );
        assert_eq!(
            registration(true, false, true),
            Registration::Subscribe { snapshot: true }
        );
        assert_eq!(registration(true, true, false), Registration::Unchanged);
        assert_eq!(
            registration(true, true, true),
            Registration::Subscribe { snapshot: true },
            "a snapshot asked for again is sent again"
        );
        assert_eq!(registration(false, true, true), Registration::Unsubscribe);
        assert_eq!(registration(false, false, true), Registration::Unchanged);
    }
}

//! The `sip` check over TCP or TLS: a connection per probe, the request sent once (a
//! reliable transport retransmits for it, RFC 3261 §17.1.2.1), and the stream cut into
//! messages by their `Content-Length` until the final answer comes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::message::{Transaction, message_length, options_request, parse_response};
use super::{Failure, MAX_MESSAGE_BYTES, Response, Waiting};
use crate::probe::https::TlsClient;
use crate::probe::{Target, connect, https};

/// Connects (and handshakes, with `tls`), sends the request and reads until the final answer,
/// all before `timeout`.
pub(super) async fn exchange(
    tls: Option<&TlsClient>,
    target: &Target,
    timeout: Duration,
) -> Result<Response, Failure> {
    let deadline = Instant::now() + timeout;
    let timed_out = || Failure::NoFinalAnswer {
        target: target.clone(),
        timeout,
        seen: Default::default(),
    };
    let local_of = |addr: std::io::Result<SocketAddr>| {
        addr.map_err(|source| Failure::Io {
            action: "connecting to",
            target: target.clone(),
            source,
        })
    };
    match tls {
        Some(tls) => {
            let stream = tokio::time::timeout_at(deadline, https::handshake(tls, target, timeout))
                .await
                .map_err(|_| timed_out())?
                .map_err(Failure::Connect)?;
            let local = local_of(stream.get_ref().0.local_addr())?;
            converse(stream, "tls", local, target, timeout, deadline).await
        }
        None => {
            let stream = tokio::time::timeout_at(deadline, connect(target, timeout))
                .await
                .map_err(|_| timed_out())?
                .map_err(Failure::Connect)?;
            let local = local_of(stream.local_addr())?;
            converse(stream, "tcp", local, target, timeout, deadline).await
        }
    }
}

/// Sends the request on `stream` and reads messages until the final answer to it.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    transport: &str,
    local: SocketAddr,
    target: &Target,
    timeout: Duration,
    deadline: Instant,
) -> Result<Response, Failure> {
    let io = |action, source| Failure::Io {
        action,
        target: target.clone(),
        source,
    };
    let transaction = Transaction::random(local);
    let request = options_request(target, transport, local, &transaction);
    let mut waiting = Waiting::new(transaction);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    match tokio::time::timeout_at(deadline, stream.write_all(request.as_bytes())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(io("sending the request to", e)),
        Err(_) => {
            return Err(Failure::NoFinalAnswer {
                target: target.clone(),
                timeout,
                seen: Box::new(waiting.seen),
            });
        }
    }
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            // A TLS peer that closes without close_notify has closed all the same.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Ok(Err(e)) => return Err(io("reading the answer of", e)),
            Err(_) => {
                return Err(Failure::NoFinalAnswer {
                    target: target.clone(),
                    timeout,
                    seen: Box::new(waiting.seen),
                });
            }
        };
        if n == 0 {
            return Err(Failure::Closed {
                target: target.clone(),
                seen: Box::new(waiting.seen),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        let unreadable = |source| Failure::Unreadable {
            target: target.clone(),
            source,
        };
        while let Some(length) = message_length(&buf).map_err(unreadable)? {
            let message: Vec<u8> = buf.drain(..length).collect();
            let response = parse_response(&message).map_err(unreadable)?;
            if let Some(answer) = waiting.consider(response) {
                return Ok(answer);
            }
        }
        if buf.len() > MAX_MESSAGE_BYTES {
            return Err(Failure::TooLarge {
                target: target.clone(),
            });
        }
    }
}

//! The `sip` check over UDP: one connected socket per probe, the request sent on the
//! schedule of `timers`, datagrams read until the final answer or the timeout.
//!
//! The socket is connected to the instance, so the kernel delivers only the instance's
//! datagrams to it, and an ICMP port unreachable comes back as "connection refused" on the
//! next send or receive: a stopped SIP Server is told at once, not at the timeout.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::message::{Transaction, options_request, parse_response};
use super::{Failure, MAX_MESSAGE_BYTES, Waiting, timers};
use crate::probe::Target;

/// Sends the request until its final answer comes, `timeout` passes, or the instance
/// refuses it.
pub(super) async fn exchange(
    target: &Target,
    timeout: Duration,
) -> Result<super::Response, Failure> {
    let started = Instant::now();
    let deadline = started + timeout.min(timers::TIMER_F);
    let socket = tokio::time::timeout_at(deadline, open(target))
        .await
        .map_err(|_| {
            Failure::Connect(format!("resolving {target} timed out after {timeout:?}"))
        })??;
    let io = |action, source| Failure::Io {
        action,
        target: target.clone(),
        source,
    };
    let local = socket
        .local_addr()
        .map_err(|e| io("binding a socket to", e))?;
    let transaction = Transaction::random(local);
    let request = options_request(target, "udp", local, &transaction);
    let schedule = timers::transmissions(timeout);
    let mut waiting = Waiting::new(transaction);
    let mut sent = 0;
    let mut buf = vec![0u8; MAX_MESSAGE_BYTES];
    loop {
        let next_send = schedule.get(sent).map(|at| started + *at);
        if next_send.is_some_and(|at| at <= Instant::now()) {
            match socket.send(request.as_bytes()).await {
                Ok(_) => sent += 1,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    return Err(Failure::Refused {
                        target: target.clone(),
                    });
                }
                Err(e) => return Err(io("sending the request to", e)),
            }
            continue;
        }
        let wake = next_send.unwrap_or(deadline).min(deadline);
        let received = match tokio::time::timeout_at(wake, socket.recv(&mut buf)).await {
            Ok(received) => received,
            Err(_) if wake < deadline => continue,
            Err(_) => {
                return Err(Failure::NoAnswer {
                    target: target.clone(),
                    transmissions: sent,
                    seen: Box::new(waiting.seen),
                });
            }
        };
        let n = match received {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                return Err(Failure::Refused {
                    target: target.clone(),
                });
            }
            Err(e) => return Err(io("reading the answer of", e)),
        };
        // Only the instance can send to a connected socket: what it says is judged, and
        // something that is not SIP fails the probe rather than be waited past.
        let response = parse_response(&buf[..n]).map_err(|source| Failure::Unreadable {
            target: target.clone(),
            source,
        })?;
        if let Some(answer) = waiting.consider(response) {
            return Ok(answer);
        }
    }
}

/// A UDP socket connected to the first address of `target`.
async fn open(target: &Target) -> Result<UdpSocket, Failure> {
    let failed = |e: std::io::Error| Failure::Connect(format!("resolving {target} failed: {e}"));
    let addr: SocketAddr = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(failed)?
        .next()
        .ok_or_else(|| Failure::Connect(format!("{target}: the host name has no address")))?;
    let any: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(any)
        .await
        .map_err(|e| Failure::Connect(format!("binding a UDP socket for {target} failed: {e}")))?;
    socket.connect(addr).await.map_err(|e| {
        Failure::Connect(format!("connecting a UDP socket to {target} failed: {e}"))
    })?;
    Ok(socket)
}

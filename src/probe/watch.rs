//! Watch connections: one TCP connection held open to an instance between probes, the way
//! the Genesys Local Control Agent notices a dead server. When the server process dies, its
//! host's kernel closes (FIN) or resets (RST) every connection it had at once, long before
//! the next probe would have found the port closed.
//!
//! The connection sends nothing; whatever the instance sends on it is read and dropped, a
//! little at a time, so that a chatty server cannot fill memory. TCP keepalive and
//! `TCP_USER_TIMEOUT` bound how long a peer that vanished without a word (a host powered
//! off, a cable pulled) keeps it open: then probes, which time out, notice first anyway.
//!
//! A closed watch connection alone does not prove the instance dead: servers close idle
//! connections on a timer of their own. The monitor probes at once when it closes and
//! believes the probe (see `crate::monitor`).

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{Target, connect};

/// Keepalive probes after the connection has been idle for the check's interval, one a
/// second, three unanswered ones ending it.
const KEEPALIVE_PROBE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_PROBES: u32 = 3;

/// Opens a watch connection to `target` within `timeout`; `idle` is how long the
/// connection may stay silent before keepalive probes start.
pub async fn open(target: &Target, timeout: Duration, idle: Duration) -> Result<TcpStream, String> {
    let stream = connect(target, timeout).await?;
    let socket = SockRef::from(&stream);
    let keepalive = TcpKeepalive::new()
        .with_time(idle)
        .with_interval(KEEPALIVE_PROBE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    socket
        .set_tcp_keepalive(&keepalive)
        .map_err(|e| format!("cannot set keepalive on the watch connection to {target}: {e}"))?;
    // Bounds unacknowledged data too (none is sent, but the kernel's own probes count).
    socket
        .set_tcp_user_timeout(Some(idle + KEEPALIVE_PROBE_INTERVAL * KEEPALIVE_PROBES))
        .map_err(|e| {
            format!("cannot set TCP_USER_TIMEOUT on the watch connection to {target}: {e}")
        })?;
    Ok(stream)
}

/// Waits until the instance closes `stream`; says how, for the log and the reason of the
/// resulting change.
pub async fn closed(mut stream: TcpStream, target: &Target) -> String {
    let mut sink = [0u8; 512];
    loop {
        match stream.read(&mut sink).await {
            Ok(0) => return format!("{target} closed the watch connection"),
            Ok(_) => continue,
            Err(e) => return format!("the watch connection to {target} failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A listener on a free loopback port, and the target naming it.
    async fn listening() -> (tokio::net::TcpListener, Target) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target {
            host: "127.0.0.1".into(),
            port: listener.local_addr().unwrap().port(),
        };
        (listener, target)
    }

    #[tokio::test]
    async fn a_watch_connection_ends_when_its_peer_closes_and_drops_what_it_is_sent() {
        let (listener, target) = listening().await;
        let watch = open(&target, Duration::from_secs(1), Duration::from_secs(2))
            .await
            .unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();
        let watching = tokio::spawn({
            let target = target.clone();
            async move { closed(watch, &target).await }
        });
        // A greeting larger than the read buffer is read and dropped; the watch goes on.
        peer.write_all(&[b'x'; 4096]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !watching.is_finished(),
            "data is no reason to stop watching"
        );
        drop(peer);
        let said = tokio::time::timeout(Duration::from_secs(5), watching)
            .await
            .expect("the close is noticed")
            .unwrap();
        assert_eq!(said, format!("{target} closed the watch connection"));
    }

    #[tokio::test]
    async fn a_refused_watch_says_so() {
        let (listener, target) = listening().await;
        drop(listener);
        let refused = open(&target, Duration::from_secs(1), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(refused.contains("refused"), "{refused}");
    }
}

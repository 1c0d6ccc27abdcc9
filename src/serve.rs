//! What every listener of the binary shares (the S3 listener, the admin listener, the node
//! server): taking the next connection until a stop is asked for, with a back-off on accept
//! errors (out of file descriptors and the like) instead of a busy loop. What each does with a
//! connection (limits, TLS, HTTP versions, draining) stays its own.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// How long a listener waits after a failed accept before the next one.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The next connection on `listener`, or `None` once `stop` resolves (`stop` must not be
/// polled again after that). `what` names the listener in the log.
pub async fn next_connection<S>(
    listener: &TcpListener,
    stop: &mut S,
    what: &str,
) -> Option<(TcpStream, SocketAddr)>
where
    S: Future + Unpin,
{
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return Some((stream, peer));
                }
                Err(e) => {
                    tracing::warn!(listener = what, error = %e, "accept failed");
                    tokio::select! {
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        _ = &mut *stop => return None,
                    }
                }
            },
            _ = &mut *stop => return None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hands_out_connections_until_stopped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let client = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (stream, peer) = next_connection(&listener, &mut rx, "test").await.unwrap();
        let client = client.await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(stream.nodelay().unwrap());
        tx.send(()).unwrap();
        assert!(next_connection(&listener, &mut rx, "test").await.is_none());
    }
}

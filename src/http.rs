//! The HTTP server loop of `sluice serve`: hyper's HTTP/1.1 connections (with upgrades, for the
//! signaling sockets) over the axum router, within [`HttpLimits`]: a client must send its request
//! headers within `header_read_timeout` (slowloris clients are cut off), and at most
//! `max_connections` connections are open at once, signaling sockets included (a connection over
//! the cap is closed at once, a warning says so and `/metrics` counts it). Shutdown stops accepting, lets requests in
//! flight finish and closes idle connections.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use sluice_controlplane::limits::{HttpCounters, HttpLimits};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// A connection's stream holding its place under the connection cap for as long as it lives
/// (an upgraded signaling socket keeps the stream, and so the place).
struct Counted<T> {
    io: T,
    _permit: OwnedSemaphorePermit,
    counters: Arc<HttpCounters>,
}

impl<T> Drop for Counted<T> {
    fn drop(&mut self) {
        self.counters.closed();
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Serves `app` on `listener` within `limits`, counting connections in `counters`, until
/// `shutdown` resolves; then waits up to `drain` for the requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    counters: Arc<HttpCounters>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let max = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(());
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        // Reap finished connection tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, say: back off instead of spinning.
                tracing::warn!(error = %e, "accepting an HTTP connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            let refused = counters.count_refusal();
            if refused.is_power_of_two() {
                tracing::warn!(
                    max_connections = max,
                    refused,
                    %peer,
                    "HTTP connection limit reached: closing new connections (raise --max-connections)"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        counters.opened();
        let io = TokioIo::new(Counted {
            io: stream,
            _permit: permit,
            counters: counters.clone(),
        });
        // Handlers that need the client's address (per-IP limits) read it as `ConnectInfo`.
        let service = TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        );
        let mut stop = stop_rx.clone();
        let header_timeout = limits.header_read_timeout;
        tasks.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(io, service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    drop(stop_tx);
    let _ = tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
}

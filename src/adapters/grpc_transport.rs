//! The HTTP/2 transport of the ext_authz gRPC API.
//!
//! Envoy multiplexes all the checks of one worker on one HTTP/2
//! connection, and sends them in bursts: a single read often holds dozens
//! of `Check` calls. The usual server runs each call as its own runtime
//! task; every finished call then wakes the connection, which writes and
//! flushes that one answer, so a burst of N calls costs N writes here and N
//! reads in Envoy.
//!
//! Here the calls of a connection run on the connection's own task: the
//! connection reads everything Envoy sent, the calls that can answer at
//! once do so, and the connection flushes all their answers in one write.
//! A call that has to wait (a bearer token checked against GitLab) simply
//! stays pending in the connection's set until it is woken, without
//! holding up the others. Connections still spread over the runtime's
//! threads, and Envoy opens one per worker.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;

use crate::connections::{self, Activity, Counted, Io, Limits, Supervised};

/// HTTP/2 windows for the checks. With HTTP/2's default 64 KiB windows a
/// few hundred checks in flight (each carrying the request's cookies) would
/// wait for window updates. The windows are fixed: adaptive sizing pings
/// the peer to measure the link, which checks of a few hundred bytes never
/// need (about 2 µs of CPU per check in `bench/controllers.sh`).
const CONNECTION_WINDOW: u32 = 4 << 20;
const STREAM_WINDOW: u32 = 1 << 20;
/// Calls in flight per connection; Envoy opens another connection beyond.
const MAX_STREAMS: u32 = 1024;

type Call = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where hyper hands over the calls of one connection.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Call>>>);

impl<F> hyper::rt::Executor<F> for Calls
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, call: F) {
        // A call that panics ends alone, as a task of its own would; Envoy
        // sees its stream reset and refuses the request.
        let call = AssertUnwindSafe(call).catch_unwind().map(|_| ());
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::pin(call));
    }
}

/// A connection together with the calls it accepted.
struct Connection<C> {
    conn: Pin<Box<C>>,
    handed_over: Calls,
    running: FuturesUnordered<Call>,
}

impl<C, E> Future for Connection<C>
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        // Reads every frame the peer sent, hands over the new calls and
        // writes what earlier calls answered.
        let closed = this.conn.as_mut().poll(cx);
        this.running.extend(
            this.handed_over
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .drain(..),
        );
        // Runs the new calls and those woken since the last poll. Their
        // answers wake this task, so the connection writes them all at once
        // on its next poll.
        while let Poll::Ready(Some(())) = this.running.poll_next_unpin(cx) {}
        match closed {
            Poll::Ready(result) => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "gRPC connection ended");
                }
                // The connection is gone; calls still waiting cannot answer.
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Serves the gRPC `routes` on `listener` (HTTP/2 with prior knowledge, as
/// Envoy connects) within `limits` until `shutdown` completes, then lets
/// the calls in flight finish for up to `limits.grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: tonic::service::Routes,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    connections::serve(
        "listen.grpc",
        listener,
        limits.grace,
        shutdown,
        |stream, stop| {
            let activity = Activity::new(false);
            let calls = Calls::default();
            let mut builder = hyper::server::conn::http2::Builder::new(calls.clone());
            builder
                .initial_connection_window_size(CONNECTION_WINDOW)
                .initial_stream_window_size(STREAM_WINDOW)
                .adaptive_window(false)
                .max_concurrent_streams(MAX_STREAMS)
                .auto_date_header(false);
            let conn = builder.serve_connection(
                TokioIo::new(Io::new(stream, activity.clone())),
                Counted::new(TowerToHyperService::new(routes.clone()), activity.clone()),
            );
            Connection {
                conn: Box::pin(Supervised::new(conn, activity, limits, stop)),
                handed_over: calls,
                running: FuturesUnordered::new(),
            }
        },
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use tonic::server::NamedService;
    use tonic_health::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response};

    use super::serve;

    /// A gRPC service whose every call panics.
    #[derive(Clone)]
    struct Panics;

    impl NamedService for Panics {
        const NAME: &'static str = "test.Panics";
    }

    impl tower::Service<http::Request<tonic::body::Body>> for Panics {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
        >;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Infallible>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future {
            Box::pin(async { panic!("this call panics") })
        }
    }

    async fn start() -> (
        std::net::SocketAddr,
        tonic_health::server::HealthReporter,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (reporter, health) = tonic_health::server::health_reporter();
        let routes = tonic::service::Routes::new(health).add_service(Panics);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = crate::connections::Limits {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(120),
            grace: Duration::from_secs(10),
            max_age: None,
        };
        let server = tokio::spawn(serve(listener, routes, limits, async {
            let _ = stopped.await;
        }));
        (addr, reporter, stop, server)
    }

    /// One HTTP/2 connection, as Envoy keeps per worker.
    async fn channel(addr: std::net::SocketAddr) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    fn check(service: &str) -> tonic::Request<HealthCheckRequest> {
        tonic::Request::new(HealthCheckRequest {
            service: service.into(),
        })
    }

    const PATIENCE: Duration = Duration::from_secs(5);
    const SERVING: i32 = health_check_response::ServingStatus::Serving as i32;
    const NOT_SERVING: i32 = health_check_response::ServingStatus::NotServing as i32;

    /// The next status an open `Watch` call reports; `what` names the wait.
    async fn next_status(
        watch: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
        what: &str,
    ) -> i32 {
        tokio::time::timeout(PATIENCE, watch.message())
            .await
            .unwrap_or_else(|_| panic!("{what}"))
            .expect("the connection is alive")
            .expect("the call is still open")
            .status
    }

    #[tokio::test]
    async fn a_waiting_call_holds_up_neither_the_others_nor_its_own_answers() {
        let (addr, reporter, _stop, _server) = start().await;
        reporter
            .set_service_status("ws", ServingStatus::NotServing)
            .await;
        let mut client = HealthClient::new(channel(addr).await);
        // A call that stays open on the connection, waiting for news.
        let mut watch = client.watch(check("ws")).await.unwrap().into_inner();
        assert_eq!(
            next_status(&mut watch, "the first status arrives").await,
            NOT_SERVING
        );
        // Many unary calls on the same connection, all at once, all answered.
        let calls = (0..64).map(|_| {
            let mut c = client.clone();
            async move { c.check(check("ws")).await }
        });
        let answers = tokio::time::timeout(PATIENCE, futures::future::join_all(calls))
            .await
            .expect("the unary calls are not held up by the open one");
        for a in answers {
            assert_eq!(a.unwrap().into_inner().status, NOT_SERVING);
        }
        // The waiting call is woken and answers when its news comes.
        reporter
            .set_service_status("ws", ServingStatus::Serving)
            .await;
        assert_eq!(
            next_status(&mut watch, "the open call answers once woken").await,
            SERVING
        );
    }

    #[tokio::test]
    async fn a_panicking_call_fails_alone() {
        let (addr, reporter, _stop, _server) = start().await;
        reporter
            .set_service_status("ws", ServingStatus::NotServing)
            .await;
        let chan = channel(addr).await;
        // Another call open on the same connection when the panic happens.
        let mut watch = HealthClient::new(chan.clone())
            .watch(check("ws"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            next_status(&mut watch, "the first status arrives").await,
            NOT_SERVING
        );
        let mut grpc = tonic::client::Grpc::new(chan);
        grpc.ready().await.unwrap();
        let failed = tokio::time::timeout(
            PATIENCE,
            grpc.unary::<(), (), _>(
                tonic::Request::new(()),
                http::uri::PathAndQuery::from_static("/test.Panics/Call"),
                tonic_prost::ProstCodec::default(),
            ),
        )
        .await
        .expect("the panicking call ends");
        assert!(failed.is_err(), "a panicking call has no answer");
        // The connection, and the call open on it, live on.
        reporter
            .set_service_status("ws", ServingStatus::Serving)
            .await;
        assert_eq!(
            next_status(&mut watch, "the open call still answers after the panic").await,
            SERVING
        );
    }

    #[tokio::test]
    async fn shutdown_stops_accepting_and_returns() {
        let (addr, reporter, stop, server) = start().await;
        reporter
            .set_service_status("ws", ServingStatus::Serving)
            .await;
        let mut client = HealthClient::new(channel(addr).await);
        client.check(check("ws")).await.unwrap();
        stop.send(()).unwrap();
        tokio::time::timeout(PATIENCE, server)
            .await
            .expect("the server returns once its connections are drained")
            .unwrap()
            .unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "no new connection after shutdown"
        );
    }
}

//! The gRPC API (`ember.v1.Cache`, see `ember-grpc`) over the fleet: every
//! call runs through the same client as the RESP side.

use std::future::Future;

use bytes::Bytes;
use client::{Client, Error, Frame};
use grpc::{Backend, Failure};
use route::RouteError;
use tokio::net::TcpListener;

/// The fleet's client as a gRPC backend.
#[derive(Debug, Clone)]
struct Fleet(Client);

impl Backend for Fleet {
    fn execute(&self, args: Vec<Bytes>) -> impl Future<Output = Result<Frame, Failure>> + Send {
        let pending = self.0.start(args);
        async move { pending.await.map_err(failure) }
    }
}

/// How a client error reaches a gRPC caller.
fn failure(e: Error) -> Failure {
    match e {
        Error::Redis(text) => Failure::Redis(text),
        Error::Route(e @ RouteError::CrossShard { .. }) => Failure::Redis(format!("CROSSSLOT {e}")),
        e if e.is_timeout() => Failure::Timeout(e.to_string()),
        e if e.is_unavailable() => Failure::Unavailable(e.to_string()),
        e => Failure::Invalid(format!("ERR {e}")),
    }
}

/// Serves the gRPC API over `client` on `listener` (with health and
/// reflection) until `shutdown` completes.
pub async fn serve_grpc(
    listener: TcpListener,
    client: Client,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), grpc::ServeError> {
    grpc::serve(listener, Fleet(client), shutdown).await
}

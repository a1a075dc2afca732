//! The gRPC API (`ember.v1.Cache`, see `ember-grpc`) over the fleet: every
//! call runs through the same client as the RESP side.

use std::future::Future;

use bytes::Bytes;
use client::{Client, Error, Frame};
use grpc::{Backend, Failure};
use route::RouteError;
use tokio::net::TcpListener;

/// The fleet's client as a gRPC backend, and the proxy's password.
#[derive(Debug, Clone)]
struct Fleet {
    client: Client,
    requirepass: Option<String>,
}

impl Backend for Fleet {
    fn execute(&self, args: Vec<Bytes>) -> impl Future<Output = Result<Frame, Failure>> + Send {
        let pending = self.client.start(args);
        async move { pending.await.map_err(failure) }
    }

    fn authorize(&self, password: Option<&[u8]>) -> Result<(), Failure> {
        authorize(self.requirepass.as_deref(), password)
    }
}

/// A gRPC call's password against `requirepass`: Redis's answers to a
/// client that did not AUTH, or AUTHed wrongly.
pub(crate) fn authorize(requirepass: Option<&str>, password: Option<&[u8]>) -> Result<(), Failure> {
    match (requirepass, password) {
        (None, _) => Ok(()),
        (Some(want), Some(got)) if want.as_bytes() == got => Ok(()),
        (Some(_), None) => Err(Failure::Redis("NOAUTH Authentication required.".into())),
        (Some(_), Some(_)) => Err(Failure::Redis(
            "WRONGPASS invalid username-password pair or user is disabled.".into(),
        )),
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
/// reflection) until `shutdown` completes. With `requirepass`, every call
/// must carry it (`authorization: Bearer <password>`).
pub async fn serve_grpc(
    listener: TcpListener,
    client: Client,
    requirepass: Option<String>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), grpc::ServeError> {
    grpc::serve(
        listener,
        Fleet {
            client,
            requirepass,
        },
        shutdown,
    )
    .await
}

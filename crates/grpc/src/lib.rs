//! Ember's gRPC API: the `ember.v1.Cache` service of
//! `proto/ember/v1/ember.proto`, over any [`Backend`] that runs Redis
//! commands.
//!
//! The typed calls (`Get`, `Set`, `MGet`...) become the Redis commands
//! they name, `Execute` runs any command, and `GetStream`/`SetStream` move
//! large values in chunks. Error replies become gRPC statuses whose message
//! is Redis's text and whose code follows its first word (the table is in
//! the proto). [`serve`] also serves the standard health service and server
//! reflection.
//!
//! This crate knows no routing and no keyspace: the proxy's backend is the
//! fleet's client, a server's would be its command table. It keeps tonic
//! and prost out of every other crate.
#![warn(missing_docs)]

use std::future::Future;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use resp::Frame;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// The generated messages, client and server.
#[allow(
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod pb {
    tonic::include_proto!("ember.v1");

    /// The proto's file descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/ember_descriptor.bin"));
}

use pb::cache_server::{Cache, CacheServer};

/// Why a command got no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// An error reply, its text code first (`WRONGTYPE ...`).
    Redis(String),
    /// No node answered in time.
    Timeout(String),
    /// No node could answer (down, refused, lost).
    Unavailable(String),
    /// The request was refused before it was sent (cannot be routed...).
    Invalid(String),
}

/// What runs the commands.
pub trait Backend: Send + Sync + 'static {
    /// Runs one command, name first, and returns its reply. An error reply
    /// is [`Failure::Redis`], not a frame.
    fn execute(&self, args: Vec<Bytes>) -> impl Future<Output = Result<Frame, Failure>> + Send;

    /// Whether a call may run, given the password its metadata carries
    /// (`authorization: Bearer <password>`, or none): what AUTH is to a
    /// RESP client. Every call is checked before it runs; by default every
    /// call may.
    fn authorize(&self, password: Option<&[u8]>) -> Result<(), Failure> {
        let _ = password;
        Ok(())
    }
}

/// The password a call carries: its `authorization` metadata, `Bearer `
/// then the password.
fn password<T>(request: &Request<T>) -> Option<&[u8]> {
    let value = request.metadata().get("authorization")?.as_bytes();
    let lower = value.get(..7)?.to_ascii_lowercase();
    (lower == b"bearer ").then(|| &value[7..])
}

/// The gRPC status for a failure (see the table in the proto).
pub fn status(failure: Failure) -> Status {
    match failure {
        Failure::Redis(text) => {
            let word = text.split(' ').next().unwrap_or_default();
            let code = match word {
                "WRONGTYPE" | "BUSYKEY" | "EXECABORT" | "NOSCRIPT" => {
                    tonic::Code::FailedPrecondition
                }
                "ERR" | "CROSSSLOT" => tonic::Code::InvalidArgument,
                "NOAUTH" | "WRONGPASS" => tonic::Code::Unauthenticated,
                "NOPERM" => tonic::Code::PermissionDenied,
                "OOM" => tonic::Code::ResourceExhausted,
                "LOADING" | "BUSY" | "MASTERDOWN" | "READONLY" | "TRYAGAIN" | "CLUSTERDOWN" => {
                    tonic::Code::Unavailable
                }
                _ => tonic::Code::Unknown,
            };
            Status::new(code, text)
        }
        Failure::Timeout(text) => Status::deadline_exceeded(text),
        Failure::Unavailable(text) => Status::unavailable(text),
        Failure::Invalid(text) => Status::invalid_argument(text),
    }
}

/// The `Cache` service over a backend.
#[derive(Debug)]
pub struct CacheService<B> {
    backend: B,
}

impl<B: Backend> CacheService<B> {
    /// The service, running commands on `backend`.
    pub fn new(backend: B) -> CacheService<B> {
        CacheService { backend }
    }

    async fn run(&self, args: Vec<Bytes>) -> Result<Frame, Status> {
        self.backend.execute(args).await.map_err(status)
    }

    /// Refuses a call its password does not let in.
    fn admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.backend.authorize(password(request)).map_err(status)
    }
}

fn unexpected(command: &str, frame: &Frame) -> Status {
    Status::internal(format!("unexpected reply to {command}: {frame:?}"))
}

/// A `GetReply` from a GET's bulk or nil.
fn value(command: &str, frame: Frame) -> Result<pb::GetReply, Status> {
    match frame {
        Frame::Bulk(value) => Ok(pb::GetReply { found: true, value }),
        Frame::NullBulk | Frame::Null => Ok(pb::GetReply::default()),
        other => Err(unexpected(command, &other)),
    }
}

/// `SET key value [PX|PXAT|KEEPTTL] [NX|XX] [GET]`.
fn set_command(
    key: Bytes,
    value: Bytes,
    ttl: Option<pb::Ttl>,
    condition: i32,
    get_old: bool,
) -> Vec<Bytes> {
    let mut args = vec![Bytes::from_static(b"SET"), key, value];
    match ttl.and_then(|t| t.ttl) {
        Some(pb::ttl::Ttl::Milliseconds(ms)) => {
            args.extend([Bytes::from_static(b"PX"), Bytes::from(ms.to_string())]);
        }
        Some(pb::ttl::Ttl::AtUnixMs(at)) => {
            args.extend([Bytes::from_static(b"PXAT"), Bytes::from(at.to_string())]);
        }
        Some(pb::ttl::Ttl::Keep(true)) => args.push(Bytes::from_static(b"KEEPTTL")),
        Some(pb::ttl::Ttl::Keep(false)) | None => {}
    }
    match pb::Condition::try_from(condition) {
        Ok(pb::Condition::IfAbsent) => args.push(Bytes::from_static(b"NX")),
        Ok(pb::Condition::IfPresent) => args.push(Bytes::from_static(b"XX")),
        _ => {}
    }
    if get_old {
        args.push(Bytes::from_static(b"GET"));
    }
    args
}

/// The reply of a SET, with or without GET.
fn set_reply(frame: Frame, get_old: bool) -> Result<pb::SetReply, Status> {
    match (frame, get_old) {
        (Frame::Simple(_), false) => Ok(pb::SetReply {
            stored: true,
            ..Default::default()
        }),
        (Frame::NullBulk | Frame::Null, false) => Ok(pb::SetReply::default()),
        // With GET, SET answers the old value, stored or not; a condition
        // that failed is told by NX finding a value or XX finding none,
        // which the old value shows.
        (Frame::Bulk(old), true) => Ok(pb::SetReply {
            stored: true,
            had_old: true,
            old,
        }),
        (Frame::NullBulk | Frame::Null, true) => Ok(pb::SetReply {
            stored: true,
            ..Default::default()
        }),
        (other, _) => Err(unexpected("SET", &other)),
    }
}

/// A frame as a `Reply` message.
pub fn reply(frame: Frame) -> pb::Reply {
    use pb::reply::Value;
    let array = |kind: pb::ArrayKind, items: Vec<Frame>| {
        Value::Array(pb::Array {
            kind: kind as i32,
            items: items.into_iter().map(reply).collect(),
        })
    };
    let value = match frame {
        Frame::Simple(s) => Value::Simple(String::from_utf8_lossy(&s).into_owned()),
        // Errors are statuses; one nested in an array is kept as its text.
        Frame::Error(s) | Frame::BulkError(s) => {
            Value::Simple(String::from_utf8_lossy(&s).into_owned())
        }
        Frame::Integer(n) => Value::Integer(n),
        Frame::Bulk(b) => Value::Bulk(b),
        Frame::NullBulk | Frame::NullArray | Frame::Null => Value::Null(pb::Null {}),
        Frame::Array(items) => array(pb::ArrayKind::Array, items),
        Frame::Set(items) => array(pb::ArrayKind::Set, items),
        Frame::Push(items) => array(pb::ArrayKind::Push, items),
        Frame::Map(pairs) => Value::Map(pb::Map {
            entries: pairs
                .into_iter()
                .map(|(k, v)| pb::MapEntry {
                    key: Some(reply(k)),
                    value: Some(reply(v)),
                })
                .collect(),
        }),
        Frame::Double(d) => Value::Double(d),
        Frame::Boolean(b) => Value::Boolean(b),
        Frame::BigNumber(n) => Value::BigNumber(String::from_utf8_lossy(&n).into_owned()),
        // A verbatim string (INFO, LOLWUT in RESP3) is a string: its text,
        // as a RESP2 client gets it.
        Frame::Verbatim { text, .. } => Value::Bulk(text),
        // Attributes describe the frame they come with.
        Frame::Attribute { frame, .. } => return reply(*frame),
        // A frame kind RESP gains later: its description, not nothing.
        other => Value::Simple(format!("{other:?}")),
    };
    pb::Reply { value: Some(value) }
}

/// The largest message the service takes or sends: a value as large as
/// Redis's `proto-max-bulk-len` (512 MB), and its envelope.
const MAX_MESSAGE: usize = 512 * 1024 * 1024 + 1024;

/// The largest chunk `GetStream` sends when asked for none.
const CHUNK: usize = 64 * 1024;

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ValueChunk, Status>> + Send>>;

#[tonic::async_trait]
impl<B: Backend> Cache for CacheService<B> {
    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetReply>, Status> {
        self.admit(&request)?;
        let key = request.into_inner().key;
        let frame = self.run(vec![Bytes::from_static(b"GET"), key]).await?;
        value("GET", frame).map(Response::new)
    }

    async fn set(
        &self,
        request: Request<pb::SetRequest>,
    ) -> Result<Response<pb::SetReply>, Status> {
        self.admit(&request)?;
        let r = request.into_inner();
        let get_old = r.get_old;
        let args = set_command(r.key, r.value, r.ttl, r.condition, get_old);
        let frame = self.run(args).await?;
        set_reply(frame, get_old).map(Response::new)
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteReply>, Status> {
        self.admit(&request)?;
        let keys = request.into_inner().keys;
        if keys.is_empty() {
            return Ok(Response::new(pb::DeleteReply { deleted: 0 }));
        }
        let mut args = vec![Bytes::from_static(b"DEL")];
        args.extend(keys);
        match self.run(args).await? {
            Frame::Integer(deleted) => Ok(Response::new(pb::DeleteReply { deleted })),
            other => Err(unexpected("DEL", &other)),
        }
    }

    async fn m_get(
        &self,
        request: Request<pb::MGetRequest>,
    ) -> Result<Response<pb::MGetReply>, Status> {
        self.admit(&request)?;
        let keys = request.into_inner().keys;
        if keys.is_empty() {
            return Ok(Response::new(pb::MGetReply::default()));
        }
        let mut args = vec![Bytes::from_static(b"MGET")];
        args.extend(keys);
        match self.run(args).await? {
            Frame::Array(items) => Ok(Response::new(pb::MGetReply {
                values: items
                    .into_iter()
                    .map(|f| value("MGET", f))
                    .collect::<Result<_, _>>()?,
            })),
            other => Err(unexpected("MGET", &other)),
        }
    }

    async fn m_set(
        &self,
        request: Request<pb::MSetRequest>,
    ) -> Result<Response<pb::MSetReply>, Status> {
        self.admit(&request)?;
        let pairs = request.into_inner().pairs;
        if pairs.is_empty() {
            return Ok(Response::new(pb::MSetReply {}));
        }
        let mut args = vec![Bytes::from_static(b"MSET")];
        for pair in pairs {
            args.extend([pair.key, pair.value]);
        }
        self.run(args).await?;
        Ok(Response::new(pb::MSetReply {}))
    }

    async fn flush(
        &self,
        request: Request<pb::FlushRequest>,
    ) -> Result<Response<pb::FlushReply>, Status> {
        self.admit(&request)?;
        self.run(vec![Bytes::from_static(b"FLUSHALL")]).await?;
        Ok(Response::new(pb::FlushReply {}))
    }

    async fn incr(
        &self,
        request: Request<pb::IncrRequest>,
    ) -> Result<Response<pb::IncrReply>, Status> {
        self.admit(&request)?;
        let r = request.into_inner();
        let by = if r.by == 0 { 1 } else { r.by };
        let args = vec![
            Bytes::from_static(b"INCRBY"),
            r.key,
            Bytes::from(by.to_string()),
        ];
        match self.run(args).await? {
            Frame::Integer(value) => Ok(Response::new(pb::IncrReply { value })),
            other => Err(unexpected("INCRBY", &other)),
        }
    }

    async fn execute(
        &self,
        request: Request<pb::ExecuteRequest>,
    ) -> Result<Response<pb::Reply>, Status> {
        self.admit(&request)?;
        let args = request.into_inner().args;
        if args.is_empty() {
            return Err(Status::invalid_argument("ERR no command"));
        }
        Ok(Response::new(reply(self.run(args).await?)))
    }

    type GetStreamStream = ChunkStream;

    async fn get_stream(
        &self,
        request: Request<pb::GetStreamRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        self.admit(&request)?;
        let r = request.into_inner();
        let size = match r.chunk_size {
            0 => CHUNK,
            n => n as usize,
        };
        let got = value(
            "GET",
            self.run(vec![Bytes::from_static(b"GET"), r.key]).await?,
        )?;
        let total = got.value.len();
        // The first message says what is coming; the value follows as
        // slices of the one buffer (no copies).
        let head = pb::ValueChunk {
            found: got.found,
            total_length: total as u64,
            data: got.value.slice(..size.min(total)),
        };
        let rest = got.value;
        let chunks = (size..total).step_by(size).map(move |at| {
            Ok(pb::ValueChunk {
                data: rest.slice(at..(at + size).min(total)),
                ..Default::default()
            })
        });
        let stream = tokio_stream::iter(std::iter::once(Ok(head)).chain(chunks));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn set_stream(
        &self,
        request: Request<Streaming<pb::SetStreamChunk>>,
    ) -> Result<Response<pb::SetReply>, Status> {
        self.admit(&request)?;
        let mut stream = request.into_inner();
        let Some(first) = stream.next().await.transpose()? else {
            return Err(Status::invalid_argument(
                "ERR SetStream needs a first message with the key",
            ));
        };
        let mut value = BytesMut::from(&first.data[..]);
        while let Some(chunk) = stream.next().await.transpose()? {
            value.extend_from_slice(&chunk.data);
        }
        let args = set_command(first.key, value.freeze(), first.ttl, first.condition, false);
        let frame = self.run(args).await?;
        set_reply(frame, false).map(Response::new)
    }
}

/// Why [`serve`] stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The reflection service could not read the descriptor set.
    Reflection(String),
    /// The transport failed.
    Transport(tonic::transport::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Reflection(e) => write!(f, "reflection: {e}"),
            ServeError::Transport(e) => write!(f, "gRPC transport: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// Serves `ember.v1.Cache` over `backend` on `listener`, with the health
/// service (reporting "ember.v1.Cache" serving) and server reflection,
/// until `shutdown` completes.
pub async fn serve<B: Backend>(
    listener: tokio::net::TcpListener,
    backend: B,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<CacheServer<CacheService<B>>>().await;
    // Both versions of reflection: grpcurl asks for v1, older tools for
    // v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            CacheServer::new(CacheService::new(backend))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(ServeError::Transport)
}

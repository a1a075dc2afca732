//! A RESP connection with a reused read buffer and a coalescing write buffer.

use std::task::Poll;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::TransportError;
use crate::output::{Output, Piece};

/// Bounds on one connection's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// Bytes asked of the socket per read while the read buffer is small:
    /// Redis reads 16 KiB at a time (`PROTO_IOBUF_LEN`). A larger request
    /// in progress is read in steps as large as what has arrived of it, so
    /// big values cost few reads.
    pub read_chunk: usize,
    /// Most unsent output a connection may hold before it is cut off
    /// (Redis's `client-output-buffer-limit`); 0 means no limit.
    pub max_output: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            read_chunk: 16 * 1024,
            max_output: 0,
        }
    }
}

/// One peer: a byte stream, the bytes read from it and not yet decoded, and
/// the bytes to send it.
///
/// The intended loop, for a server: [`Connection::fill`], decode every
/// complete request in [`Connection::read_buffer`], append each reply to
/// [`Connection::write_buffer`], and when the read buffer holds no complete
/// request, [`Connection::flush`]. A pipelined batch of N commands then
/// costs one write, not N.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    read: BytesMut,
    write: Output,
    limits: ConnectionLimits,
    /// The read buffer's length the request being read needs, set by
    /// [`Connection::expect`]; 0 for none.
    expect: usize,
}

impl Connection<tokio::net::TcpStream> {
    /// [`Connection::fill`] for a TCP socket, one system call cheaper per
    /// read. tokio learns that a socket is drained only from a read that
    /// would block, so a plain read loop makes one empty `read` per batch of
    /// requests. A read that stops short of the room it was given has taken
    /// everything the socket held, so here the socket is marked not ready
    /// at once. Bytes that arrive meanwhile raise readiness anew, and
    /// tokio's readiness ticks keep that from being cleared by mistake.
    ///
    /// The wait is the socket's own reader slot (`poll_read_ready`), not
    /// the waiter list that `readable()` joins: that future takes the
    /// socket's lock to join the list, again when polled, and again when
    /// dropped, even when the socket was ready at once; the slot takes it
    /// once, and only when the socket is not ready. One task per
    /// connection reads it, which is what the slot requires.
    ///
    /// A read loop that never waits on the socket never spends tokio's
    /// cooperative budget here: a connection's replies spend it as they
    /// are written.
    pub async fn fill_socket(&mut self) -> Result<usize, TransportError> {
        let want = self.want();
        self.read.reserve(want);
        let stream = &self.stream;
        let buf = &mut self.read;
        std::future::poll_fn(|cx| {
            loop {
                // The read first: tokio's readiness says, without a system
                // call, whether the socket may hold something (woken by
                // the driver, it does). Only a socket not ready is waited
                // on.
                let mut drained = None;
                let read = stream.try_io(tokio::io::Interest::READABLE, || {
                    let n = stream.try_read_buf(&mut (&mut *buf).limit(want))?;
                    if n > 0 && n < want {
                        drained = Some(n);
                        return Err(std::io::ErrorKind::WouldBlock.into());
                    }
                    Ok(n)
                });
                match read {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if let Some(n) = drained {
                            return Poll::Ready(Ok(n));
                        }
                    }
                    Err(e) => return Poll::Ready(Err(e.into())),
                }
                // Not ready: wait for it. Readiness raised meanwhile makes
                // this ready at once, and the read is tried again.
                if let Err(e) = std::task::ready!(stream.poll_read_ready(cx)) {
                    return Poll::Ready(Err(e.into()));
                }
            }
        })
        .await
    }
}

/// How [`Connection::flush_or_read`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything was sent.
    Done,
    /// The socket would take no more output, and the peer sent this many
    /// bytes meanwhile (0: it closed its side); the rest of the output
    /// still waits in [`Connection::write_buffer`].
    Read(usize),
}

impl Connection<tokio::net::TcpStream> {
    /// Sends the output as the socket takes it, and while the socket takes
    /// no more, reads what the peer sends meanwhile, as Redis does: it
    /// keeps reading a client's requests whatever output that client has
    /// not read yet, bounded by the output limits alone. A peer that sends
    /// all its requests before it reads a reply is then never stuck
    /// against a server that stopped reading it.
    ///
    /// Cancel-safe: what the socket took is gone from the output, what it
    /// did not is still there, in order.
    pub async fn flush_or_read(&mut self) -> Result<Flushed, TransportError> {
        let want = self.want();
        let stream = &self.stream;
        let write = &mut self.write;
        let read = &mut self.read;
        let result = std::future::poll_fn(|cx| {
            loop {
                while let Some(front) = write.front() {
                    match stream.try_write(front) {
                        Ok(n) => write.advance(n),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Poll::Ready(Err(e.into())),
                    }
                }
                if write.is_empty() {
                    return Poll::Ready(Ok(Flushed::Done));
                }
                read.reserve(want);
                match stream.try_read_buf(&mut (&mut *read).limit(want)) {
                    Ok(n) => return Poll::Ready(Ok(Flushed::Read(n))),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e.into())),
                }
                // Neither way can go on: wait for either. Readiness raised
                // meanwhile makes a poll ready at once, and both are tried
                // again.
                let writable = stream.poll_write_ready(cx);
                let readable = stream.poll_read_ready(cx);
                match (writable, readable) {
                    (Poll::Ready(Err(e)), _) | (_, Poll::Ready(Err(e))) => {
                        return Poll::Ready(Err(e.into()));
                    }
                    (Poll::Pending, Poll::Pending) => return Poll::Pending,
                    _ => {}
                }
            }
        })
        .await;
        match result {
            Ok(Flushed::Done) => self.write.clear(KEEP_CAPACITY),
            Err(_) => self.write.clear(KEEP_CAPACITY),
            Ok(Flushed::Read(_)) => {}
        }
        result
    }
}

/// Buffers above this capacity are given back after a flush, so one huge
/// reply does not pin memory for the life of the connection.
const KEEP_CAPACITY: usize = 64 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps `stream` with default limits.
    pub fn new(stream: S) -> Self {
        Self::with_limits(stream, ConnectionLimits::default())
    }

    /// Wraps `stream` with `limits`.
    pub fn with_limits(stream: S, limits: ConnectionLimits) -> Self {
        Connection {
            stream,
            read: BytesMut::with_capacity(limits.read_chunk),
            write: Output::new(),
            limits,
            expect: 0,
        }
    }

    /// Reads once from the stream into the read buffer. Returns the number
    /// of bytes read; `Ok(0)` means the peer closed its side.
    pub async fn fill(&mut self) -> Result<usize, TransportError> {
        let want = self.want();
        // `reserve` reuses the buffer's allocation once earlier frames
        // split off it have been dropped.
        self.read.reserve(want);
        let n = self
            .stream
            .read_buf(&mut (&mut self.read).limit(want))
            .await?;
        Ok(n)
    }

    /// Bytes to ask of the socket in one read: a chunk, or as much as the
    /// buffer holds while a large request arrives (so big values cost few
    /// reads), but no more than the request [`Connection::expect`]s.
    fn want(&self) -> usize {
        let want = self.limits.read_chunk.max(self.read.len());
        if self.expect > self.read.len() {
            want.min(self.expect - self.read.len()).max(1)
        } else {
            want.max(1)
        }
    }

    /// Sizes the read buffer for a request that needs `total` bytes in all
    /// (a big argument arriving: `RequestDecoder::needed`): one allocation
    /// of that size, as Redis makes, where growing by doubling could leave
    /// nearly half of it unused, and reads that take no more than the
    /// request needs. 0 lifts it.
    pub fn expect(&mut self, total: usize) {
        self.expect = total;
        if total > self.read.capacity() {
            let mut buf = BytesMut::with_capacity(total);
            buf.extend_from_slice(&self.read);
            self.read = buf;
        }
    }

    /// The bytes read and not yet consumed.
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.read
    }

    /// The bytes waiting to be sent; append replies here.
    pub fn write_buffer(&mut self) -> &mut Output {
        &mut self.write
    }

    /// Whether unsent output has grown past [`ConnectionLimits::max_output`].
    pub fn output_exceeded(&self) -> bool {
        self.limits.max_output != 0 && self.write.len() > self.limits.max_output
    }

    /// Fails with [`TransportError::OutputLimit`] if the output limit is
    /// exceeded.
    pub fn check_output(&self) -> Result<(), TransportError> {
        if self.output_exceeded() {
            return Err(TransportError::OutputLimit {
                limit: self.limits.max_output,
            });
        }
        Ok(())
    }

    /// Sends everything in the write buffer, in as few writes as the socket
    /// allows.
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        while let Some(piece) = self.write.next_piece() {
            let written = match piece {
                Piece::Shared(bytes) => self.stream.write_all(&bytes).await,
                Piece::Buffer(buf) => {
                    let written = self.stream.write_all(buf).await;
                    buf.clear();
                    written
                }
            };
            if let Err(e) = written {
                self.write.clear(KEEP_CAPACITY);
                return Err(e.into());
            }
        }
        self.write.clear(KEEP_CAPACITY);
        Ok(())
    }

    /// The stream, for socket options.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Takes the stream back, dropping unsent output.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::duplex;

    use super::*;

    #[tokio::test]
    async fn pipelined_replies_leave_in_one_write() {
        let (client, server) = duplex(1 << 16);
        let mut conn = Connection::new(server);
        let mut client = Connection::new(client);
        client.write_buffer().put_slice(b"PING\r\nPING\r\nPING\r\n");
        client.flush().await.unwrap();
        assert!(conn.fill().await.unwrap() > 0);
        let mut decoder = resp::RequestDecoder::new();
        let mut n = 0;
        while let Some(_request) = decoder.decode(conn.read_buffer()).unwrap() {
            conn.write_buffer().put_slice(b"+PONG\r\n");
            n += 1;
        }
        assert_eq!(n, 3);
        conn.flush().await.unwrap();
        assert_eq!(client.fill().await.unwrap(), 21);
        assert_eq!(&client.read_buffer()[..], b"+PONG\r\n+PONG\r\n+PONG\r\n");
    }

    /// A client socket and a server's connection, over loopback.
    async fn loopback() -> (tokio::net::TcpStream, Connection<tokio::net::TcpStream>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, Connection::new(server))
    }

    /// The socket read first, waited on only when it is empty: what is
    /// there is read at once, what comes later wakes the wait, and the
    /// peer's close reads as 0.
    #[tokio::test]
    async fn fill_socket_reads_then_waits() {
        let (mut client, mut conn) = loopback().await;
        client.write_all(b"PING\r\n").await.unwrap();
        assert_eq!(conn.fill_socket().await.unwrap(), 6);
        let writer = tokio::spawn(async move {
            tokio::task::yield_now().await;
            client.write_all(b"ECHO\r\n").await.unwrap();
            client
        });
        assert_eq!(conn.fill_socket().await.unwrap(), 6);
        drop(writer.await.unwrap());
        assert_eq!(conn.fill_socket().await.unwrap(), 0);
        assert_eq!(&conn.read_buffer()[..], b"PING\r\nECHO\r\n");
    }

    /// A peer that writes and does not read: the output waits, the
    /// requests are still read, and once the peer reads, the output leaves
    /// whole and in order.
    #[tokio::test]
    async fn a_stuck_flush_still_reads() {
        let (mut client, mut conn) = loopback().await;
        // Far more than two sockets' buffers hold.
        let reply: Vec<u8> = (0..32 << 20).map(|i| (i % 251) as u8).collect();
        conn.write_buffer().put_slice(&reply);
        client.write_all(b"PING\r\n").await.unwrap();
        let mut read = 0;
        while read < 6 {
            match conn.flush_or_read().await.unwrap() {
                Flushed::Read(n) => read += n,
                Flushed::Done => panic!("32 MB went into a socket nobody reads"),
            }
        }
        assert_eq!(&conn.read_buffer()[..], b"PING\r\n");
        assert!(!conn.write_buffer().is_empty());
        // Cancelled mid-send: nothing is lost.
        let _ =
            tokio::time::timeout(std::time::Duration::from_millis(10), conn.flush_or_read()).await;
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; reply.len()];
            client.read_exact(&mut got).await.unwrap();
            assert!(got == reply, "the output arrived out of order");
        });
        assert_eq!(conn.flush_or_read().await.unwrap(), Flushed::Done);
        assert!(conn.write_buffer().is_empty());
        reader.await.unwrap();
    }

    #[tokio::test]
    async fn output_limit() {
        let (_client, server) = duplex(64);
        let limits = ConnectionLimits {
            max_output: 10,
            ..ConnectionLimits::default()
        };
        let mut conn = Connection::with_limits(server, limits);
        conn.write_buffer().put_slice(b"0123456789");
        assert!(conn.check_output().is_ok());
        conn.write_buffer().put_slice(b"!");
        assert!(matches!(
            conn.check_output(),
            Err(TransportError::OutputLimit { limit: 10 })
        ));
    }

    #[tokio::test]
    async fn reads_are_bounded_then_grow_with_the_request() {
        let (mut client, server) = duplex(1 << 20);
        let limits = ConnectionLimits {
            read_chunk: 4,
            ..ConnectionLimits::default()
        };
        let mut conn = Connection::with_limits(server, limits);
        client.write_all(&[b'x'; 100]).await.unwrap();
        assert_eq!(conn.fill().await.unwrap(), 4);
        assert_eq!(conn.fill().await.unwrap(), 4);
        assert_eq!(conn.fill().await.unwrap(), 8);
        assert_eq!(conn.fill().await.unwrap(), 16);
        drop(client);
        let mut total = 32;
        loop {
            let n = conn.fill().await.unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, 100);
    }
}

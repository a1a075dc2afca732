//! `tokio_util::codec` adapters for ember-resp.

use bytes::BytesMut;
use resp::{Decoder as FrameDecoder, Frame, Protocol, Request, RequestDecoder};
use tokio_util::codec::{Decoder, Encoder};

use crate::TransportError;

/// Decodes RESP2/RESP3 frames and encodes frames and commands: a client's
/// or a proxy's codec.
#[derive(Debug)]
pub struct RespCodec {
    decoder: FrameDecoder,
    protocol: Protocol,
}

impl RespCodec {
    /// A codec that writes frames as RESP3 (`protocol` says otherwise for
    /// a RESP2 peer) and decodes with default limits.
    pub fn new(protocol: Protocol) -> Self {
        RespCodec {
            decoder: FrameDecoder::new(),
            protocol,
        }
    }

    /// A codec decoding with `limits`.
    pub fn with_limits(protocol: Protocol, limits: resp::Limits) -> Self {
        RespCodec {
            decoder: FrameDecoder::with_limits(limits),
            protocol,
        }
    }
}

impl Default for RespCodec {
    fn default() -> Self {
        Self::new(Protocol::Resp3)
    }
}

impl Decoder for RespCodec {
    type Item = Frame;
    type Error = TransportError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, TransportError> {
        Ok(self.decoder.decode(src)?)
    }
}

impl Encoder<Frame> for RespCodec {
    type Error = TransportError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), TransportError> {
        frame.encode_as(self.protocol, dst);
        Ok(())
    }
}

impl<A: AsRef<[u8]>> Encoder<&[A]> for RespCodec {
    type Error = TransportError;

    /// Encodes a command from its arguments, with no frame in between.
    fn encode(&mut self, args: &[A], dst: &mut BytesMut) -> Result<(), TransportError> {
        resp::encode_command(dst, args);
        Ok(())
    }
}

/// Decodes client requests as Redis reads them and encodes reply frames:
/// a server's codec.
#[derive(Debug)]
pub struct RequestCodec {
    decoder: RequestDecoder,
    /// RESP2 until the client says `HELLO 3`.
    protocol: Protocol,
}

impl Default for RequestCodec {
    fn default() -> Self {
        RequestCodec {
            decoder: RequestDecoder::new(),
            protocol: Protocol::Resp2,
        }
    }
}

impl RequestCodec {
    /// A codec with Redis's default limits, writing RESP2 replies.
    pub fn new() -> Self {
        Self::default()
    }

    /// The request decoder, to change limits or authentication state.
    pub fn decoder_mut(&mut self) -> &mut RequestDecoder {
        &mut self.decoder
    }

    /// Switches the protocol replies are written in.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }
}

impl Decoder for RequestCodec {
    type Item = Request;
    type Error = TransportError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, TransportError> {
        Ok(self.decoder.decode(src)?)
    }
}

impl Encoder<Frame> for RequestCodec {
    type Error = TransportError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), TransportError> {
        frame.encode_as(self.protocol, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_codec_round_trip() {
        let mut codec = RequestCodec::new();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n"[..]);
        let get = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(get, Request::from_args(&["GET", "k"]));
        let ping = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(ping, Request::from_args(&["PING"]));
        let mut out = BytesMut::new();
        codec.encode(Frame::Null, &mut out).unwrap();
        assert_eq!(&out[..], b"$-1\r\n");
        codec.set_protocol(Protocol::Resp3);
        codec.encode(Frame::Null, &mut out).unwrap();
        assert_eq!(&out[..], b"$-1\r\n_\r\n");
    }

    #[test]
    fn resp_codec_commands_and_errors() {
        let mut codec = RespCodec::default();
        let mut out = BytesMut::new();
        codec.encode(&["PING"][..], &mut out).unwrap();
        assert_eq!(&out[..], b"*1\r\n$4\r\nPING\r\n");
        let mut bad = BytesMut::from(&b"?\r\n"[..]);
        assert!(matches!(
            codec.decode(&mut bad),
            Err(TransportError::Protocol(_))
        ));
    }
}

//! Framing on the wire: a 24-byte header (magic, command, length, checksum) read first, its
//! magic and length checked, then the payload decoded with the `bitcoin` crate's types.
//!
//! [`decode_frame`] is the whole check and decode of one frame, pure and synchronous (the
//! socket path reads a frame's bytes and calls it; the fuzz targets call it directly).

use super::PeerInfo;
use bitcoin::consensus::encode::{deserialize_partial, serialize};
use bitcoin::consensus::Decodable;
use bitcoin::hashes::Hash;
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::Magic;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Largest message payload accepted (Core's MAX_PROTOCOL_MESSAGE_LENGTH).
pub(crate) const MAX_MESSAGE_BYTES: u32 = 4_000_000;
/// Bytes in a frame's header: magic (4), command (12), payload length (4), checksum (4).
pub(crate) const HEADER_BYTES: usize = 24;
/// A message not written out in this long (the peer stopped reading) drops the peer.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a frame could not be read: each ends the connection, some with a ban score.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReadError {
    /// The connection failed or closed.
    #[error("{0}")]
    Io(String),
    /// Another network's magic: an honest node of another chain, dropped without a score.
    #[error("{0}")]
    Magic(String),
    /// A length over the limit, a bad checksum or an undecodable payload.
    #[error("{0}")]
    Misbehaved(String),
    /// A frame begun and not finished within the stall timeout: it held read budget the node
    /// could not drain. Scored as a stall (50) and the peer dropped.
    #[error("{0}")]
    Stalled(String),
    /// Fewer bytes than the frame's header says ([`decode_frame`] on a short slice): `needed`
    /// bytes in all make the frame.
    #[error("incomplete frame: {needed} bytes needed, {have} given")]
    Incomplete {
        /// Bytes the whole frame takes (its header, then the length its header gives).
        needed: usize,
        /// Bytes given.
        have: usize,
    },
}

/// A frame's header, checked: its command and payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// The command, NUL-padded ASCII as on the wire.
    pub(crate) command: [u8; 12],
    /// Payload bytes that follow the header (at most [`MAX_MESSAGE_BYTES`]).
    pub(crate) length: u32,
    /// First 4 bytes of the payload's double SHA-256.
    pub(crate) checksum: [u8; 4],
}

impl FrameHeader {
    /// Whether the command is one the `bitcoin` crate decodes into a typed message (the rest
    /// are `NetworkMessage::Unknown`, which the node ignores).
    pub(crate) fn is_known(&self) -> bool {
        const KNOWN: &[&str] = &[
            "version",
            "verack",
            "addr",
            "inv",
            "getdata",
            "notfound",
            "getblocks",
            "getheaders",
            "mempool",
            "block",
            "headers",
            "sendheaders",
            "getaddr",
            "ping",
            "pong",
            "merkleblock",
            "filterload",
            "filteradd",
            "filterclear",
            "tx",
            "getcfilters",
            "cfilter",
            "getcfheaders",
            "cfheaders",
            "getcfcheckpt",
            "cfcheckpt",
            "reject",
            "alert",
            "feefilter",
            "sendcmpct",
            "cmpctblock",
            "getblocktxn",
            "blocktxn",
            "wtxidrelay",
            "addrv2",
            "sendaddrv2",
        ];
        let end = self.command.iter().position(|&b| b == 0).unwrap_or(12);
        KNOWN.iter().any(|k| k.as_bytes() == &self.command[..end])
    }
}

/// Checks a frame's 24-byte header: the network magic, and the length against
/// [`MAX_MESSAGE_BYTES`] (before any payload byte is read or buffered).
pub(crate) fn check_header(
    magic: Magic,
    header: &[u8; HEADER_BYTES],
) -> Result<FrameHeader, ReadError> {
    if header[..4] != magic.to_bytes() {
        return Err(ReadError::Magic(format!(
            "wrong network magic {} (ours {}): a node of another network",
            hex::encode(&header[..4]),
            hex::encode(magic.to_bytes())
        )));
    }
    let length = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    if length > MAX_MESSAGE_BYTES {
        return Err(ReadError::Misbehaved(format!(
            "message of {length} bytes is over the {MAX_MESSAGE_BYTES}-byte limit"
        )));
    }
    let mut command = [0u8; 12];
    command.copy_from_slice(&header[4..16]);
    Ok(FrameHeader {
        command,
        length,
        checksum: [header[20], header[21], header[22], header[23]],
    })
}

/// Decodes the one complete frame at the start of `bytes` with every check the socket path
/// makes (magic, length limit, checksum over the whole payload, payload decode); returns the
/// message and the frame's size (bytes after it are not looked at). A known message whose
/// payload has bytes past the fields we know is taken, the rest ignored, as Core does (peers
/// of newer versions, or Bitcoin SV, append fields).
pub(crate) fn decode_frame(
    magic: Magic,
    bytes: &[u8],
) -> Result<(NetworkMessage, usize), ReadError> {
    let Some(head) = bytes.first_chunk::<HEADER_BYTES>() else {
        return Err(ReadError::Incomplete {
            needed: HEADER_BYTES,
            have: bytes.len(),
        });
    };
    let header = check_header(magic, head)?;
    let size = HEADER_BYTES + header.length as usize;
    let Some(frame) = bytes.get(..size) else {
        return Err(ReadError::Incomplete {
            needed: size,
            have: bytes.len(),
        });
    };
    let payload = &frame[HEADER_BYTES..];
    if !checksum_holds(&header.checksum, payload) {
        return Err(ReadError::Misbehaved(format!(
            "malformed message: bad checksum on a {} message",
            command_text(&header.command)
        )));
    }
    decode_payload(&header, frame).map(|message| (message, size))
}

/// The command as text, for messages.
fn command_text(command: &[u8; 12]) -> String {
    let end = command.iter().position(|&b| b == 0).unwrap_or(12);
    String::from_utf8_lossy(&command[..end]).into_owned()
}

/// Decodes a whole frame whose header and checksum were checked.
fn decode_payload(header: &FrameHeader, frame: &[u8]) -> Result<NetworkMessage, ReadError> {
    match deserialize_partial::<RawNetworkMessage>(frame) {
        Ok((raw, _)) => Ok(raw.into_payload()),
        // The crate refuses a payload with bytes after the fields it knows (and a version
        // without the fields it wants); Core reads what it knows and ignores the rest, and so
        // do we for the messages the node acts on.
        Err(e) => decode_known_prefix(&header.command, &frame[HEADER_BYTES..])
            .ok_or_else(|| ReadError::Misbehaved(format!("malformed message: {e}"))),
    }
}

/// The message the start of `payload` holds, for the commands the node acts on; bytes after
/// the known fields are ignored. None: not one of those commands, or its fields do not decode.
fn decode_known_prefix(command: &[u8; 12], payload: &[u8]) -> Option<NetworkMessage> {
    use bitcoin::block::Header;
    use bitcoin::consensus::encode::VarInt;
    fn take<T: Decodable>(payload: &[u8]) -> Option<T> {
        deserialize_partial::<T>(payload).ok().map(|(v, _)| v)
    }
    let message = match command_text(command).as_str() {
        "version" => {
            let mut r = payload;
            NetworkMessage::Version(VersionMessage::consensus_decode(&mut r).ok()?)
        }
        "verack" => NetworkMessage::Verack,
        "sendheaders" => NetworkMessage::SendHeaders,
        "getaddr" => NetworkMessage::GetAddr,
        "mempool" => NetworkMessage::MemPool,
        "ping" => NetworkMessage::Ping(take(payload)?),
        "pong" => NetworkMessage::Pong(take(payload)?),
        "inv" => NetworkMessage::Inv(take(payload)?),
        "getdata" => NetworkMessage::GetData(take(payload)?),
        "notfound" => NetworkMessage::NotFound(take(payload)?),
        "getheaders" => NetworkMessage::GetHeaders(take(payload)?),
        "getblocks" => NetworkMessage::GetBlocks(take(payload)?),
        "block" => NetworkMessage::Block(take(payload)?),
        "headers" => {
            let mut r = payload;
            let count = VarInt::consensus_decode(&mut r).ok()?.0;
            // Each header is 81 bytes on the wire (80 and a zero transaction count).
            if count > (r.len() / 81) as u64 {
                return None;
            }
            let mut headers = Vec::with_capacity(count as usize);
            for _ in 0..count {
                headers.push(Header::consensus_decode(&mut r).ok()?);
                if u8::consensus_decode(&mut r).ok()? != 0 {
                    return None;
                }
            }
            NetworkMessage::Headers(headers)
        }
        _ => return None,
    };
    Some(message)
}

/// Whether `checksum` is the payload's (first 4 bytes of its double SHA-256).
fn checksum_holds(checksum: &[u8; 4], payload: &[u8]) -> bool {
    let digest = bitcoin::hashes::sha256d::Hash::hash(payload);
    checksum[..] == digest.as_byte_array()[..4]
}

/// Payload bytes read (and counted against the node's read budget) per step, so the buffer
/// grows as bytes arrive: a header that claims 4 MB costs nothing until the bytes come.
pub(crate) const READ_CHUNK: usize = 64 << 10;

/// One frame read off the wire: the message, its size on the wire, and the node-wide read
/// budget its buffered bytes hold until it is handled (none for an unknown message, whose
/// payload is checked and dropped as it arrives).
pub(crate) struct Frame {
    /// The decoded message (`NetworkMessage::Unknown` with an empty payload for an unknown
    /// command).
    pub(crate) message: NetworkMessage,
    /// Bytes of the frame on the wire: header and payload.
    pub(crate) size: usize,
    /// The read budget the buffered payload holds until the frame is dropped.
    pub(crate) held: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Reads one frame: the header, checked before any payload byte is buffered; then the payload
/// in [`READ_CHUNK`] steps, each first taken from `budget` (the node-wide bytes of partial and
/// read-ahead frames), so memory held tracks bytes received and is bounded across peers. An
/// unknown command's payload is hashed and dropped as it arrives (Core ignores those messages;
/// buffering them would let a peer park 4 MB per message here). Known messages are decoded by
/// [`decode_frame`].
pub(crate) async fn read_message(
    reader: &mut OwnedReadHalf,
    magic: Magic,
    info: &PeerInfo,
    budget: &Arc<tokio::sync::Semaphore>,
    frame_timeout: Duration,
) -> Result<Frame, ReadError> {
    let io = |e: std::io::Error| ReadError::Io(format!("read: {e}"));
    let mut head = [0u8; HEADER_BYTES];
    reader.read_exact(&mut head).await.map_err(io)?;
    // From its header on, a frame must be finished within `frame_timeout`: a peer that starts
    // frames and never ends them would otherwise keep the read budget it took until the idle
    // timeout.
    match tokio::time::timeout(
        frame_timeout,
        read_payload(reader, magic, info, budget, head),
    )
    .await
    {
        Ok(read) => read,
        Err(_) => Err(ReadError::Stalled(format!(
            "a message not finished within {} s of its header (the stall timeout)",
            frame_timeout.as_secs_f64()
        ))),
    }
}

/// The rest of [`read_message`]: the payload after the header `head`.
async fn read_payload(
    reader: &mut OwnedReadHalf,
    magic: Magic,
    info: &PeerInfo,
    budget: &Arc<tokio::sync::Semaphore>,
    head: [u8; HEADER_BYTES],
) -> Result<Frame, ReadError> {
    let io = |e: std::io::Error| ReadError::Io(format!("read: {e}"));
    let header = check_header(magic, &head)?;
    let length = header.length as usize;
    let size = HEADER_BYTES + length;
    if !header.is_known() {
        use bitcoin::hashes::{sha256, sha256d, HashEngine};
        let mut engine = sha256::Hash::engine();
        let mut scratch = vec![0u8; length.min(READ_CHUNK)];
        let mut left = length;
        while left > 0 {
            let n = left.min(READ_CHUNK);
            reader.read_exact(&mut scratch[..n]).await.map_err(io)?;
            engine.input(&scratch[..n]);
            left -= n;
        }
        info.bytesrecv.fetch_add(size as u64, Ordering::Relaxed);
        let digest = sha256d::Hash::from_engine(engine);
        if header.checksum[..] != digest.as_byte_array()[..4] {
            return Err(ReadError::Misbehaved(format!(
                "malformed message: bad checksum on a {} message",
                command_text(&header.command)
            )));
        }
        let command = bitcoin::p2p::message::CommandString::try_from(command_text(&header.command))
            .map_err(|e| ReadError::Misbehaved(format!("malformed message: {e}")))?;
        return Ok(Frame {
            message: NetworkMessage::Unknown {
                command,
                payload: Vec::new(),
            },
            size,
            held: None,
        });
    }
    let mut frame = Vec::with_capacity(HEADER_BYTES + length.min(READ_CHUNK));
    frame.extend_from_slice(&head);
    let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let mut left = length;
    while left > 0 {
        let n = left.min(READ_CHUNK);
        let permit = budget
            .clone()
            .acquire_many_owned(n as u32)
            .await
            .map_err(|_| ReadError::Io("node stopping".into()))?;
        match held.as_mut() {
            Some(h) => h.merge(permit),
            None => held = Some(permit),
        }
        let start = frame.len();
        frame.resize(start + n, 0);
        reader.read_exact(&mut frame[start..]).await.map_err(io)?;
        left -= n;
    }
    info.bytesrecv.fetch_add(size as u64, Ordering::Relaxed);
    let (message, size) = decode_frame(magic, &frame)?;
    Ok(Frame {
        message,
        size,
        held,
    })
}

/// Why a message could not be sent to a peer (the peer is then dropped).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The socket refused the bytes.
    #[error("write: {0}")]
    Write(std::io::Error),
    /// The peer did not take the message within [`SEND_TIMEOUT`].
    #[error("write timed out: the peer stopped reading")]
    Timeout,
}

/// The sending half of a peer's connection.
pub(crate) struct Writer {
    /// The socket's write half.
    pub(crate) half: OwnedWriteHalf,
    /// The network magic every frame sent starts with.
    pub(crate) magic: Magic,
    /// The peer, whose `bytessent` each message adds to.
    pub(crate) info: Arc<PeerInfo>,
}

impl Writer {
    /// Sends one message; a peer that does not take it within a minute is given up on.
    pub(crate) async fn send(&mut self, message: NetworkMessage) -> Result<(), SendError> {
        let bytes = serialize(&RawNetworkMessage::new(self.magic, message));
        self.info
            .bytessent
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        match tokio::time::timeout(SEND_TIMEOUT, self.half.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SendError::Write(e)),
            Err(_) => Err(SendError::Timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::network::Network;

    fn frame(magic: Magic, command: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = magic.to_bytes().to_vec();
        let mut cmd = [0u8; 12];
        cmd[..command.len()].copy_from_slice(command.as_bytes());
        out.extend_from_slice(&cmd);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let digest = bitcoin::hashes::sha256d::Hash::hash(payload);
        out.extend_from_slice(&digest.as_byte_array()[..4]);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decode_frame_round_trips_and_reports_its_size() {
        let magic = Magic::from(Network::Regtest);
        let mut bytes = serialize(&RawNetworkMessage::new(magic, NetworkMessage::Ping(7)));
        let size = bytes.len();
        bytes.extend_from_slice(b"next frame");
        let (message, used) = decode_frame(magic, &bytes).unwrap();
        assert_eq!(message, NetworkMessage::Ping(7));
        assert_eq!(used, size);
    }

    #[test]
    fn trailing_payload_bytes_of_a_known_message_are_ignored() {
        let magic = Magic::from(Network::Regtest);
        let mut payload = 7u64.to_le_bytes().to_vec();
        payload.extend_from_slice(&[1, 2, 3, 4, 5]);
        let bytes = frame(magic, "ping", &payload);
        let (message, used) = decode_frame(magic, &bytes).unwrap();
        assert_eq!(message, NetworkMessage::Ping(7));
        assert_eq!(used, bytes.len());
        // The checksum still covers the whole payload, trailing bytes included.
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            decode_frame(magic, &bad),
            Err(ReadError::Misbehaved(_))
        ));
    }

    #[test]
    fn decode_frame_checks_magic_length_and_completeness() {
        let magic = Magic::from(Network::Regtest);
        let other = Magic::from(Network::Bitcoin);
        let bytes = frame(magic, "ping", &7u64.to_le_bytes());
        assert!(matches!(
            decode_frame(other, &bytes),
            Err(ReadError::Magic(_))
        ));
        assert_eq!(
            decode_frame(magic, &bytes[..30]),
            Err(ReadError::Incomplete {
                needed: 32,
                have: 30
            })
        );
        let mut big = bytes[..24].to_vec();
        big[16..20].copy_from_slice(&(MAX_MESSAGE_BYTES + 1).to_le_bytes());
        assert!(matches!(
            decode_frame(magic, &big),
            Err(ReadError::Misbehaved(_))
        ));
    }
}

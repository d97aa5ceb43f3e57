//! Framing on the wire: a 24-byte header (magic, command, length, checksum) read first, its
//! magic and length checked, then the payload decoded with the `bitcoin` crate's types.

use super::PeerInfo;
use bitcoin::consensus::encode::{deserialize, serialize};
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
pub const MAX_MESSAGE_BYTES: u32 = 4_000_000;
/// A message not written out in this long (the peer stopped reading) drops the peer.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a frame could not be read: each ends the connection, some with a ban score.
#[derive(Debug)]
pub enum ReadError {
    /// The connection failed or closed.
    Io(String),
    /// Another network's magic: an honest node of another chain, dropped without a score.
    Magic(String),
    /// A length over the limit, a bad checksum or an undecodable payload.
    Misbehaved(String),
}

/// One frame read off the wire, and its size in bytes.
pub async fn read_message(
    reader: &mut OwnedReadHalf,
    magic: Magic,
    info: &PeerInfo,
) -> Result<(NetworkMessage, usize), ReadError> {
    let mut header = [0u8; 24];
    reader
        .read_exact(&mut header)
        .await
        .map_err(|e| ReadError::Io(format!("read: {e}")))?;
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
    let mut frame = Vec::with_capacity(24 + length as usize);
    frame.extend_from_slice(&header);
    frame.resize(24 + length as usize, 0);
    reader
        .read_exact(&mut frame[24..])
        .await
        .map_err(|e| ReadError::Io(format!("read: {e}")))?;
    info.bytesrecv
        .fetch_add(frame.len() as u64, Ordering::Relaxed);
    let size = frame.len();
    match deserialize::<RawNetworkMessage>(&frame) {
        Ok(raw) => Ok((raw.into_payload(), size)),
        // Bitcoin SV appends fields to `version` (an association id); Core reads the fields it
        // knows and ignores the rest, and so do we.
        Err(e)
            if &header[4..16] == b"version\0\0\0\0\0" && checksum_holds(&header, &frame[24..]) =>
        {
            let mut payload = &frame[24..];
            VersionMessage::consensus_decode(&mut payload)
                .map(|v| (NetworkMessage::Version(v), size))
                .map_err(|_| ReadError::Misbehaved(format!("malformed message: {e}")))
        }
        Err(e) => Err(ReadError::Misbehaved(format!("malformed message: {e}"))),
    }
}

/// Whether the header's checksum is the payload's (first 4 bytes of its double SHA-256).
fn checksum_holds(header: &[u8; 24], payload: &[u8]) -> bool {
    let digest = bitcoin::hashes::sha256d::Hash::hash(payload);
    header[20..24] == digest.as_byte_array()[..4]
}

/// The sending half of a peer's connection.
pub struct Writer {
    pub half: OwnedWriteHalf,
    pub magic: Magic,
    pub info: Arc<PeerInfo>,
}

impl Writer {
    /// Sends one message; a peer that does not take it within a minute is given up on.
    pub async fn send(&mut self, message: NetworkMessage) -> Result<(), String> {
        let bytes = serialize(&RawNetworkMessage::new(self.magic, message));
        self.info
            .bytessent
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        match tokio::time::timeout(SEND_TIMEOUT, self.half.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write: {e}")),
            Err(_) => Err("write timed out: the peer stopped reading".into()),
        }
    }
}

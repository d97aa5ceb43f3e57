//! The wire encoding of every message: little-endian integers, length-prefixed bytes, a type
//! tag per message; decoding refuses truncated input, unknown tags, trailing bytes and counts
//! that cannot fit.

use super::*;
use std::collections::BTreeMap;

/// Why bytes are not a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("message truncated")]
    Truncated,
    /// The message-type tag is not one this encoding defines.
    #[error("unknown message tag {0}")]
    Tag(u8),
    /// A participant's kind byte is neither replica nor client.
    #[error("unknown participant kind {0}")]
    NodeKind(u8),
    /// An option or boolean byte is neither 0 nor 1.
    #[error("invalid flag byte {0}")]
    Flag(u8),
    /// A length or element count that the bytes left cannot hold.
    #[error("a count of {0} does not fit in the message")]
    Count(u64),
    /// Bytes remained after a complete message.
    #[error("{0} bytes after the message")]
    Trailing(usize),
}

/// A cursor over a message's bytes. [`Reader`], [`Payload`] and [`Body`] are `pub` only so that
/// [`Signed`]'s public methods may name them in bounds; this module is private and the parent
/// re-exports none of them, so nothing outside the crate can use or implement them.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.buf.first().copied().ok_or(DecodeError::Truncated)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn index(&mut self) -> Result<usize, DecodeError> {
        Ok(self.u32()? as usize)
    }

    fn digest(&mut self) -> Result<Digest, DecodeError> {
        let mut d = [0; 32];
        d.copy_from_slice(self.take(32)?);
        Ok(d)
    }

    /// A count of items each at least `min_size` bytes long: refused when they cannot fit, so
    /// a forged count allocates nothing.
    fn count(&mut self, min_size: usize) -> Result<usize, DecodeError> {
        let c = self.u32()? as usize;
        if c.saturating_mul(min_size.max(1)) > self.buf.len() {
            return Err(DecodeError::Count(c as u64));
        }
        Ok(c)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = self.count(1)?;
        Ok(self.take(len)?.to_vec())
    }

    fn node(&mut self) -> Result<Node, DecodeError> {
        match self.u8()? {
            0 => Ok(Node::Replica(self.index()?)),
            1 => Ok(Node::Client(self.index()?)),
            k => Err(DecodeError::NodeKind(k)),
        }
    }
}

fn put_u64(w: &mut Vec<u8>, x: u64) {
    w.extend_from_slice(&x.to_le_bytes());
}

fn put_index(w: &mut Vec<u8>, x: usize) {
    w.extend_from_slice(&(x as u32).to_le_bytes());
}

fn put_len(w: &mut Vec<u8>, x: usize) {
    put_index(w, x);
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_len(w, b.len());
    w.extend_from_slice(b);
}

pub(super) fn put_node(w: &mut Vec<u8>, n: Node) {
    match n {
        Node::Replica(i) => {
            w.push(0);
            put_index(w, i);
        }
        Node::Client(c) => {
            w.push(1);
            put_index(w, c);
        }
    }
}

/// A value with its type tag on the wire: what a [`Signed`] authenticates.
pub trait Payload: Sized + Clone {
    /// Writes the tag and the fields.
    fn put(&self, w: &mut Vec<u8>);
    /// Reads the tag and the fields.
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// One message type's fields and tag.
pub trait Body: Sized + Clone {
    const TAG: u8;
    fn put_fields(&self, w: &mut Vec<u8>);
    fn get_fields(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

impl<T: Body> Payload for T {
    fn put(&self, w: &mut Vec<u8>) {
        w.push(T::TAG);
        self.put_fields(w);
    }

    fn get(r: &mut Reader<'_>) -> Result<T, DecodeError> {
        match r.u8()? {
            t if t == T::TAG => T::get_fields(r),
            t => Err(DecodeError::Tag(t)),
        }
    }
}

macro_rules! into_message {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for Message {
            fn from(m: $t) -> Message {
                Message::$v(m)
            }
        }
    )*};
}

into_message!(Request => Request, PrePrepare => PrePrepare, Prepare => Prepare, Commit => Commit,
    Reply => Reply, Checkpoint => Checkpoint, ViewChange => ViewChange, NewView => NewView,
    FetchState => FetchState, StateTransfer => State);

impl Body for Request {
    const TAG: u8 = 1;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_bytes(w, &self.op);
        put_u64(w, self.timestamp);
        put_index(w, self.client);
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<Request, DecodeError> {
        Ok(Request {
            op: r.bytes()?,
            timestamp: r.u64()?,
            client: r.index()?,
        })
    }
}

impl Body for PrePrepare {
    const TAG: u8 = 2;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_u64(w, self.view);
        put_u64(w, self.seq);
        w.extend_from_slice(&self.digest);
        match &self.request {
            None => w.push(0),
            Some(req) => {
                w.push(1);
                req.put(w);
            }
        }
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<PrePrepare, DecodeError> {
        let view = r.u64()?;
        let seq = r.u64()?;
        let digest = r.digest()?;
        let request = match r.u8()? {
            0 => None,
            1 => Some(Signed::get(r)?),
            f => return Err(DecodeError::Flag(f)),
        };
        Ok(PrePrepare {
            view,
            seq,
            digest,
            request,
        })
    }
}

macro_rules! vote_body {
    ($t:ident, $tag:expr) => {
        impl Body for $t {
            const TAG: u8 = $tag;
            fn put_fields(&self, w: &mut Vec<u8>) {
                put_u64(w, self.view);
                put_u64(w, self.seq);
                w.extend_from_slice(&self.digest);
                put_index(w, self.replica);
            }
            fn get_fields(r: &mut Reader<'_>) -> Result<$t, DecodeError> {
                Ok($t {
                    view: r.u64()?,
                    seq: r.u64()?,
                    digest: r.digest()?,
                    replica: r.index()?,
                })
            }
        }
    };
}

vote_body!(Prepare, 3);
vote_body!(Commit, 4);

impl Body for Reply {
    const TAG: u8 = 5;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_u64(w, self.view);
        put_u64(w, self.timestamp);
        put_index(w, self.client);
        put_index(w, self.replica);
        put_bytes(w, &self.result);
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<Reply, DecodeError> {
        Ok(Reply {
            view: r.u64()?,
            timestamp: r.u64()?,
            client: r.index()?,
            replica: r.index()?,
            result: r.bytes()?,
        })
    }
}

impl Body for Checkpoint {
    const TAG: u8 = 6;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_u64(w, self.seq);
        w.extend_from_slice(&self.digest);
        put_index(w, self.replica);
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<Checkpoint, DecodeError> {
        Ok(Checkpoint {
            seq: r.u64()?,
            digest: r.digest()?,
            replica: r.index()?,
        })
    }
}

impl PreparedCert {
    fn put(&self, w: &mut Vec<u8>) {
        self.pre_prepare.put(w);
        put_len(w, self.prepares.len());
        for p in &self.prepares {
            p.put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<PreparedCert, DecodeError> {
        let pre_prepare = Signed::get(r)?;
        let count = r.count(32)?;
        let mut prepares = Vec::with_capacity(count);
        for _ in 0..count {
            prepares.push(Signed::get(r)?);
        }
        Ok(PreparedCert {
            pre_prepare,
            prepares,
        })
    }
}

impl Body for ViewChange {
    const TAG: u8 = 7;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_u64(w, self.new_view);
        put_u64(w, self.stable_seq);
        w.extend_from_slice(&self.stable_digest);
        put_len(w, self.checkpoint_proof.len());
        for c in &self.checkpoint_proof {
            c.put(w);
        }
        put_len(w, self.prepared.len());
        for p in &self.prepared {
            p.put(w);
        }
        put_index(w, self.replica);
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<ViewChange, DecodeError> {
        let new_view = r.u64()?;
        let stable_seq = r.u64()?;
        let stable_digest = r.digest()?;
        let count = r.count(32)?;
        let mut checkpoint_proof = Vec::with_capacity(count);
        for _ in 0..count {
            checkpoint_proof.push(Signed::get(r)?);
        }
        let count = r.count(32)?;
        let mut prepared = Vec::with_capacity(count);
        for _ in 0..count {
            prepared.push(PreparedCert::get(r)?);
        }
        Ok(ViewChange {
            new_view,
            stable_seq,
            stable_digest,
            checkpoint_proof,
            prepared,
            replica: r.index()?,
        })
    }
}

impl Body for NewView {
    const TAG: u8 = 8;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_u64(w, self.view);
        put_len(w, self.view_changes.len());
        for v in &self.view_changes {
            v.put(w);
        }
        put_len(w, self.pre_prepares.len());
        for p in &self.pre_prepares {
            p.put(w);
        }
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<NewView, DecodeError> {
        let view = r.u64()?;
        let count = r.count(32)?;
        let mut view_changes = Vec::with_capacity(count);
        for _ in 0..count {
            view_changes.push(Signed::get(r)?);
        }
        let count = r.count(32)?;
        let mut pre_prepares = Vec::with_capacity(count);
        for _ in 0..count {
            pre_prepares.push(Signed::get(r)?);
        }
        Ok(NewView {
            view,
            view_changes,
            pre_prepares,
        })
    }
}

impl Body for FetchState {
    const TAG: u8 = 9;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_u64(w, self.seq);
        put_index(w, self.replica);
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<FetchState, DecodeError> {
        Ok(FetchState {
            seq: r.u64()?,
            replica: r.index()?,
        })
    }
}

impl Body for StateTransfer {
    const TAG: u8 = 10;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_u64(w, self.seq);
        self.state.put_fields(w);
        put_index(w, self.replica);
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<StateTransfer, DecodeError> {
        Ok(StateTransfer {
            seq: r.u64()?,
            state: ServiceState::get_fields(r)?,
            replica: r.index()?,
        })
    }
}

impl Payload for Message {
    fn put(&self, w: &mut Vec<u8>) {
        match self {
            Message::Request(m) => m.put(w),
            Message::PrePrepare(m) => m.put(w),
            Message::Prepare(m) => m.put(w),
            Message::Commit(m) => m.put(w),
            Message::Reply(m) => m.put(w),
            Message::Checkpoint(m) => m.put(w),
            Message::ViewChange(m) => m.put(w),
            Message::NewView(m) => m.put(w),
            Message::FetchState(m) => m.put(w),
            Message::State(m) => m.put(w),
        }
    }

    fn get(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
        Ok(match r.peek()? {
            Request::TAG => Message::Request(Payload::get(r)?),
            PrePrepare::TAG => Message::PrePrepare(Payload::get(r)?),
            Prepare::TAG => Message::Prepare(Payload::get(r)?),
            Commit::TAG => Message::Commit(Payload::get(r)?),
            Reply::TAG => Message::Reply(Payload::get(r)?),
            Checkpoint::TAG => Message::Checkpoint(Payload::get(r)?),
            ViewChange::TAG => Message::ViewChange(Payload::get(r)?),
            NewView::TAG => Message::NewView(Payload::get(r)?),
            FetchState::TAG => Message::FetchState(Payload::get(r)?),
            StateTransfer::TAG => Message::State(Payload::get(r)?),
            t => return Err(DecodeError::Tag(t)),
        })
    }
}

/// A signed message's wire bytes (what [`live`] frames and a MAC check covers, plus the
/// authenticator).
pub fn encode_message(m: &Signed<Message>) -> Vec<u8> {
    let mut w = Vec::with_capacity(128);
    m.put(&mut w);
    w
}

/// Parses [`encode_message`]'s bytes; every byte must be used.
pub fn decode_message(bytes: &[u8]) -> Result<Signed<Message>, DecodeError> {
    let mut r = Reader { buf: bytes };
    let m = Signed::get(&mut r)?;
    if !r.buf.is_empty() {
        return Err(DecodeError::Trailing(r.buf.len()));
    }
    Ok(m)
}

impl ServiceState {
    /// The state's bytes: what its digest covers and what state transfer carries.
    pub(super) fn put_fields(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.history);
        put_len(w, self.replies.len());
        for (c, (t, r)) in &self.replies {
            put_index(w, *c);
            put_u64(w, *t);
            put_bytes(w, r);
        }
    }

    fn get_fields(r: &mut Reader<'_>) -> Result<ServiceState, DecodeError> {
        let history = r.digest()?;
        let count = r.count(16)?;
        let mut replies = BTreeMap::new();
        for _ in 0..count {
            let c = r.index()?;
            let t = r.u64()?;
            let res = r.bytes()?;
            replies.insert(c, (t, res));
        }
        Ok(ServiceState { history, replies })
    }
}

impl<T: Payload> Signed<T> {
    fn put(&self, w: &mut Vec<u8>) {
        put_node(w, self.from);
        self.body.put(w);
        put_len(w, self.auth.len());
        for m in &self.auth {
            w.extend_from_slice(m);
        }
    }

    fn get(r: &mut Reader<'_>) -> Result<Signed<T>, DecodeError> {
        let from = r.node()?;
        let body = T::get(r)?;
        let count = r.count(32)?;
        let mut auth = Vec::with_capacity(count);
        for _ in 0..count {
            auth.push(r.digest()?);
        }
        Ok(Signed { from, body, auth })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{cfg, keys};
    use super::*;

    #[test]
    fn every_message_round_trips_through_the_wire_format() {
        let c = cfg(4);
        let client = keys(&c, Node::Client(0));
        let r0 = keys(&c, Node::Replica(0));
        let req = Signed::sign(
            &client,
            Request {
                op: b"x".to_vec(),
                timestamp: 3,
                client: 0,
            },
            Audience::Replicas,
        );
        let pp = Signed::sign(
            &r0,
            PrePrepare {
                view: 0,
                seq: 1,
                digest: req.body.digest(),
                request: Some(req.clone()),
            },
            Audience::Replicas,
        );
        let prep = Signed::sign(
            &keys(&c, Node::Replica(1)),
            Prepare {
                view: 0,
                seq: 1,
                digest: pp.body.digest,
                replica: 1,
            },
            Audience::Replicas,
        );
        let ckpt = Signed::sign(
            &r0,
            Checkpoint {
                seq: 16,
                digest: [7; 32],
                replica: 0,
            },
            Audience::Replicas,
        );
        let vc = ViewChange {
            new_view: 1,
            stable_seq: 16,
            stable_digest: [7; 32],
            checkpoint_proof: vec![ckpt.clone()],
            prepared: vec![PreparedCert {
                pre_prepare: pp.clone(),
                prepares: vec![prep.clone()],
            }],
            replica: 0,
        };
        let svc = ServiceState {
            history: [1; 32],
            replies: BTreeMap::from([(0, (3, vec![9, 9]))]),
        };
        let bodies = vec![
            Message::Request(req.body.clone()),
            Message::PrePrepare(pp.body.clone()),
            Message::Prepare(prep.body.clone()),
            Message::Commit(Commit {
                view: 2,
                seq: 5,
                digest: [3; 32],
                replica: 3,
            }),
            Message::Reply(Reply {
                view: 0,
                timestamp: 3,
                client: 0,
                replica: 2,
                result: vec![1, 2, 3],
            }),
            Message::Checkpoint(ckpt.body.clone()),
            Message::ViewChange(vc.clone()),
            Message::NewView(NewView {
                view: 1,
                view_changes: vec![Signed::sign(&r0, vc, Audience::Replicas)],
                pre_prepares: vec![pp.clone()],
            }),
            Message::FetchState(FetchState {
                seq: 16,
                replica: 1,
            }),
            Message::State(StateTransfer {
                seq: 16,
                state: svc,
                replica: 2,
            }),
        ];
        for body in bodies {
            let m = Signed::sign(&r0, body, Audience::Replicas);
            let bytes = encode_message(&m);
            let back = decode_message(&bytes).expect("decodes");
            assert_eq!(back, m);
            assert!(back.verify(&keys(&c, Node::Replica(2))));
            for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
                assert!(decode_message(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode_message(&longer), Err(DecodeError::Trailing(1)));
        }
    }

    #[test]
    fn a_forged_count_allocates_nothing() {
        let c = cfg(4);
        let m = Signed::sign(
            &keys(&c, Node::Replica(0)),
            Message::FetchState(FetchState { seq: 1, replica: 0 }),
            Audience::Replicas,
        );
        let mut bytes = encode_message(&m);
        // The authenticator's count sits after node (5) + tag (1) + fields (12).
        bytes[18..22].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_message(&bytes), Err(DecodeError::Count(_))));
    }
}

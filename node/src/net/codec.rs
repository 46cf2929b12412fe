//! Wire framing for the request-response protocols: one length-prefixed frame per request and
//! per response (`u32` big-endian length, then the bytes). Every read checks the length against
//! the protocol's named maximum *before* allocating, so a peer cannot make us buffer more than the
//! maximum; oversized frames are rejected (the stream fails) and counted.

use super::stats::Counters;
use async_trait::async_trait;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::StreamProtocol;
use std::io;
use std::sync::Arc;

/// Bytes of the length prefix in front of every frame.
const FRAME_PREFIX_BYTES: usize = 4;

/// A frame is read this many bytes at a time. Its buffer starts at this size and takes the rest
/// of the announced length only once the first step has arrived: a peer that announces a large
/// frame and sends nothing holds no more than this.
const FRAME_READ_STEP_BYTES: usize = 256 * 1024;

/// A length-prefixed byte codec with separate request and response maxima.
#[derive(Clone)]
pub(crate) struct FrameCodec {
    pub(crate) channel: &'static str,
    pub(crate) request_bytes_max: usize,
    pub(crate) response_bytes_max: usize,
    pub(crate) counters: Arc<Counters>,
}

impl FrameCodec {
    pub(super) async fn read_frame<T>(&self, io: &mut T, bytes_max: usize) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut prefix = [0u8; FRAME_PREFIX_BYTES];
        io.read_exact(&mut prefix).await?;
        let length = u32::from_be_bytes(prefix) as usize;
        if length > bytes_max {
            self.counters
                .bump(&self.counters.oversized_inbound_rejected);
            tracing::warn!(
                channel = self.channel,
                length,
                bytes_max,
                "rejected an oversized inbound frame"
            );
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} frame of {length} bytes exceeds the maximum of {bytes_max}",
                    self.channel
                ),
            ));
        }
        // Grow as bytes arrive, a step at a time, instead of trusting the prefix with one big
        // allocation; each step zeroes only the bytes it then reads (`read_to_end` zeroed and
        // copied a doubling buffer: a proposal of 5,000 transactions, about 1.4 MB, was zeroed
        // twice over and copied five times).
        let mut frame = Vec::with_capacity(length.min(FRAME_READ_STEP_BYTES));
        while frame.len() < length {
            let start = frame.len();
            if start == FRAME_READ_STEP_BYTES {
                // The peer is sending: the rest in one allocation (no copies as it grows).
                frame.reserve_exact(length - start);
            }
            frame.resize(length.min(start + FRAME_READ_STEP_BYTES), 0);
            let end = frame.len();
            io.read_exact(&mut frame[start..])
                .await
                .map_err(|error| match error.kind() {
                    io::ErrorKind::UnexpectedEof => io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{} frame announced {length} bytes but the stream ended within bytes {start}..{end}",
                            self.channel
                        ),
                    ),
                    _ => error,
                })?;
        }
        Ok(frame)
    }

    async fn write_frame<T>(&self, io: &mut T, frame: &[u8], bytes_max: usize) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        // Callers check sizes before queueing; this is the last line of defence.
        if frame.len() > bytes_max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "refusing to write a {} frame of {} bytes (maximum {bytes_max})",
                    self.channel,
                    frame.len()
                ),
            ));
        }
        let length = u32::try_from(frame.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame length exceeds u32"))?;
        io.write_all(&length.to_be_bytes()).await?;
        io.write_all(frame).await?;
        io.flush().await
    }
}

#[async_trait]
impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_frame(io, self.request_bytes_max).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_frame(io, self.response_bytes_max).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write_frame(io, &request, self.request_bytes_max).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write_frame(io, &response, self.response_bytes_max)
            .await
    }
}

/// Bytes of an encoded block-sync request: `from_height` (u64 BE) then `max` (u32 BE).
pub(crate) const SYNC_REQUEST_BYTES: usize = 12;

pub(crate) fn encode_sync_request(from_height: u64, max: u32) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(SYNC_REQUEST_BYTES);
    bytes.extend_from_slice(&from_height.to_be_bytes());
    bytes.extend_from_slice(&max.to_be_bytes());
    debug_assert_eq!(bytes.len(), SYNC_REQUEST_BYTES);
    bytes
}

pub(crate) fn decode_sync_request(bytes: &[u8]) -> Result<(u64, u32), String> {
    if bytes.len() != SYNC_REQUEST_BYTES {
        return Err(format!(
            "sync request has {} bytes, expected {SYNC_REQUEST_BYTES}",
            bytes.len()
        ));
    }
    let mut height = [0u8; 8];
    height.copy_from_slice(&bytes[..8]);
    let mut max = [0u8; 4];
    max.copy_from_slice(&bytes[8..]);
    Ok((u64::from_be_bytes(height), u32::from_be_bytes(max)))
}

/// Encodes as many of `blocks` (in order) as fit in `blocks_max` blocks and `bytes_max` encoded
/// bytes: `u32` count, then per block a `u32` length and the bytes. Returns the encoding and how
/// many blocks it holds; a prefix is still a valid answer (the requester asks again from the
/// next height).
pub(crate) fn encode_sync_response(
    blocks: &[Vec<u8>],
    blocks_max: usize,
    bytes_max: usize,
) -> (Vec<u8>, usize) {
    let mut total = FRAME_PREFIX_BYTES;
    let mut count = 0usize;
    for block in blocks.iter().take(blocks_max) {
        let next = total + FRAME_PREFIX_BYTES + block.len();
        if next > bytes_max || u32::try_from(block.len()).is_err() {
            break;
        }
        total = next;
        count += 1;
    }
    let mut bytes = Vec::with_capacity(total);
    // count <= blocks_max which callers keep far below u32::MAX.
    bytes.extend_from_slice(&(count as u32).to_be_bytes());
    for block in &blocks[..count] {
        bytes.extend_from_slice(&(block.len() as u32).to_be_bytes());
        bytes.extend_from_slice(block);
    }
    assert_eq!(bytes.len(), total, "sync response length bookkeeping");
    (bytes, count)
}

/// Decodes a sync response, rejecting more than `blocks_max` blocks, lengths that overrun the
/// buffer, and trailing bytes.
pub(crate) fn decode_sync_response(
    bytes: &[u8],
    blocks_max: usize,
) -> Result<Vec<Vec<u8>>, String> {
    let mut rest = bytes;
    let take_u32 = |rest: &mut &[u8]| -> Result<usize, String> {
        if rest.len() < FRAME_PREFIX_BYTES {
            return Err("sync response truncated inside a length prefix".to_string());
        }
        let mut word = [0u8; FRAME_PREFIX_BYTES];
        word.copy_from_slice(&rest[..FRAME_PREFIX_BYTES]);
        *rest = &rest[FRAME_PREFIX_BYTES..];
        Ok(u32::from_be_bytes(word) as usize)
    };
    let count = take_u32(&mut rest)?;
    if count > blocks_max {
        return Err(format!(
            "sync response carries {count} blocks, more than the {blocks_max} allowed"
        ));
    }
    let mut blocks = Vec::with_capacity(count);
    for index in 0..count {
        let length = take_u32(&mut rest)?;
        if length > rest.len() {
            return Err(format!(
                "sync response block {index} claims {length} bytes, only {} remain",
                rest.len()
            ));
        }
        blocks.push(rest[..length].to_vec());
        rest = &rest[length..];
    }
    if !rest.is_empty() {
        return Err(format!(
            "sync response has {} trailing bytes after {count} blocks",
            rest.len()
        ));
    }
    Ok(blocks)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;
    use request_response::Codec;
    use std::sync::atomic::Ordering;

    fn codec(request_bytes_max: usize) -> FrameCodec {
        FrameCodec {
            channel: "test",
            request_bytes_max,
            response_bytes_max: 8,
            counters: Arc::new(Counters::default()),
        }
    }

    fn protocol() -> StreamProtocol {
        StreamProtocol::new("/pharmalink/test/1")
    }

    #[test]
    fn frames_round_trip_at_the_maximum() {
        let mut codec = codec(100);
        let mut wire = Cursor::new(Vec::new());
        block_on(codec.write_request(&protocol(), &mut wire, vec![7u8; 100])).unwrap();
        let mut wire = Cursor::new(wire.into_inner());
        let read = block_on(codec.read_request(&protocol(), &mut wire)).unwrap();
        assert_eq!(read, vec![7u8; 100]);
    }

    #[test]
    fn oversized_inbound_frame_is_rejected_and_counted_before_reading_the_body() {
        let mut codec = codec(100);
        // Announce 101 bytes but send none: the codec must refuse on the prefix alone.
        let mut wire = Cursor::new(101u32.to_be_bytes().to_vec());
        let error = block_on(codec.read_request(&protocol(), &mut wire)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(
            error.to_string().contains("exceeds the maximum of 100"),
            "{error}"
        );
        assert_eq!(
            codec
                .counters
                .oversized_inbound_rejected
                .load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn oversized_outbound_frame_is_refused() {
        let mut codec = codec(100);
        let mut wire = Cursor::new(Vec::new());
        let error =
            block_on(codec.write_request(&protocol(), &mut wire, vec![0u8; 101])).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(wire.into_inner().is_empty());
    }

    #[test]
    fn short_frame_is_an_eof_error() {
        let mut codec = codec(100);
        let mut bytes = 10u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[1, 2, 3]);
        let error = block_on(codec.read_request(&protocol(), &mut Cursor::new(bytes))).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn frames_longer_than_a_read_step_round_trip_and_a_short_one_says_where_it_ended() {
        let length = 2 * FRAME_READ_STEP_BYTES + 12_345;
        let mut codec = codec(length);
        let body: Vec<u8> = (0..length).map(|i| (i % 251) as u8).collect();
        let mut wire = Cursor::new(Vec::new());
        block_on(codec.write_request(&protocol(), &mut wire, body.clone())).unwrap();
        let mut wire = Cursor::new(wire.into_inner());
        assert_eq!(
            block_on(codec.read_request(&protocol(), &mut wire)).unwrap(),
            body
        );

        let mut short = (length as u32).to_be_bytes().to_vec();
        short.extend_from_slice(&body[..FRAME_READ_STEP_BYTES + 10]);
        let error = block_on(codec.read_request(&protocol(), &mut Cursor::new(short))).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            error.to_string().contains(&format!(
                "announced {length} bytes but the stream ended within bytes {FRAME_READ_STEP_BYTES}.."
            )),
            "{error}"
        );
    }

    #[test]
    fn sync_request_round_trips_and_rejects_bad_lengths() {
        let bytes = encode_sync_request(u64::MAX - 1, 77);
        assert_eq!(decode_sync_request(&bytes).unwrap(), (u64::MAX - 1, 77));
        assert!(decode_sync_request(&bytes[..11]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_sync_request(&long).is_err());
    }

    #[test]
    fn sync_response_round_trips_and_truncates_to_the_bounds() {
        let blocks: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 10 + i as usize]).collect();
        let (bytes, count) = encode_sync_response(&blocks, 256, usize::MAX);
        assert_eq!(count, 10);
        assert_eq!(decode_sync_response(&bytes, 256).unwrap(), blocks);

        let (bytes, count) = encode_sync_response(&blocks, 3, usize::MAX);
        assert_eq!(count, 3);
        assert_eq!(
            decode_sync_response(&bytes, 256).unwrap(),
            blocks[..3].to_vec()
        );

        // 4 (count) + (4 + 10) + (4 + 11) = 33 bytes hold exactly two blocks.
        let (bytes, count) = encode_sync_response(&blocks, 256, 33);
        assert_eq!((count, bytes.len()), (2, 33));
        let (_, count) = encode_sync_response(&blocks, 256, 32);
        assert_eq!(count, 1);
    }

    #[test]
    fn sync_response_decoding_rejects_malformed_input() {
        let blocks = vec![vec![1u8; 5], vec![2u8; 6]];
        let (bytes, _) = encode_sync_response(&blocks, 256, usize::MAX);
        assert!(decode_sync_response(&bytes, 1)
            .unwrap_err()
            .contains("more than"));
        assert!(decode_sync_response(&bytes[..bytes.len() - 1], 256)
            .unwrap_err()
            .contains("claims"));
        let mut trailing = bytes.clone();
        trailing.push(9);
        assert!(decode_sync_response(&trailing, 256)
            .unwrap_err()
            .contains("trailing"));
        assert!(decode_sync_response(&[0, 0], 256)
            .unwrap_err()
            .contains("truncated"));
        // Every truncation of a valid response fails instead of panicking.
        for cut in 0..bytes.len() {
            assert!(
                decode_sync_response(&bytes[..cut], 256).is_err(),
                "cut {cut}"
            );
        }
    }
}

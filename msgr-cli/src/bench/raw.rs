//! The baseline: the same cases over plain loopback TCP, a 4-byte little-endian length before each
//! message, no protocol at all.
//!
//! This is what a careful program does without a messenger: `TCP_NODELAY`, a 64 KiB write buffer
//! flushed only when the sender has nothing more to send right away, a read buffer parsed in
//! place, one `Bytes` handed out per message (as a messenger hands one to its dispatcher). The
//! messenger cannot beat it; the ratio says what the protocol and the messenger cost.
//!
//! ```text
//! frame:  len u32 LE | payload (len bytes, starting with the bench header)
//! end:    0xffff_ffff | sent u64 LE        (the sender is done; in rr the server echoes it)
//! ack:    received u64 | lost | duplicated | reordered | corrupted   (stream server -> client)
//! ```

use std::io;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::payload::{self, Integrity, SeqTracker, HEADER_LEN};
use super::plan::{Case, Limit, Mode};
use super::{new_histogram, JobResult, Outcome, Stopper};

/// The length value that marks the end of a sender's stream.
const END: u32 = u32::MAX;
/// Write buffer per connection.
const WRITE_BUF: usize = 64 * 1024;
/// Bytes of the stream server's acknowledgement.
const ACK_LEN: usize = 40;

/// Runs one case over raw TCP on loopback and measures it.
pub async fn run(case: Case, limit: Limit, verify: bool) -> anyhow::Result<Outcome> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(listener, case.jobs, case.mode, verify));
    let mut streams = Vec::with_capacity(case.jobs);
    for _ in 0..case.jobs {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to the raw-TCP server at {addr}"))?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let epoch = Instant::now();
    let mut jobs = JoinSet::new();
    for stream in streams {
        match (case.mode, case.depth) {
            (Mode::Stream, _) => jobs.spawn(stream_client(stream, case.size, limit, verify)),
            (Mode::Rr, 0 | 1) => {
                jobs.spawn(ping_pong_client(stream, case.size, limit, verify, epoch))
            }
            (Mode::Rr, depth) => jobs.spawn(window_client(
                stream, case.size, depth, limit, verify, epoch,
            )),
        };
    }
    let mut outcome = Outcome::default();
    while let Some(job) = jobs.join_next().await {
        outcome.add(job??);
    }
    server.await??;
    Ok(outcome)
}

/// Accepts `jobs` connections and serves each: sink in stream mode, echo in rr mode.
async fn serve(listener: TcpListener, jobs: usize, mode: Mode, verify: bool) -> anyhow::Result<()> {
    let mut conns = JoinSet::new();
    for _ in 0..jobs {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        match mode {
            Mode::Stream => conns.spawn(sink(stream, verify)),
            Mode::Rr => conns.spawn(echo(stream)),
        };
    }
    while let Some(conn) = conns.join_next().await {
        conn??;
    }
    Ok(())
}

/// A message read off the stream.
enum Frame {
    Data(Bytes),
    End(u64),
}

/// Splits frames out of a read buffer, reading more only when no whole frame is left.
struct FrameReader {
    rd: OwnedReadHalf,
    buf: BytesMut,
}

impl FrameReader {
    fn new(rd: OwnedReadHalf) -> Self {
        FrameReader {
            rd,
            buf: BytesMut::with_capacity(WRITE_BUF),
        }
    }

    /// The next whole frame already in the buffer.
    fn parse(&mut self) -> Option<Frame> {
        let len = u32::from_le_bytes(self.buf.get(..4)?.try_into().ok()?);
        if len == END {
            if self.buf.len() < 12 {
                return None;
            }
            self.buf.advance(4);
            return Some(Frame::End(self.buf.get_u64_le()));
        }
        let len = len as usize;
        if self.buf.len() < 4 + len {
            self.buf.reserve(4 + len - self.buf.len());
            return None;
        }
        self.buf.advance(4);
        Some(Frame::Data(self.buf.split_to(len).freeze()))
    }

    /// Reads more bytes; `false` at end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(WRITE_BUF);
        }
        Ok(self.rd.read_buf(&mut self.buf).await? > 0)
    }

    /// The next frame, reading as needed; an error at end of stream.
    async fn next(&mut self) -> io::Result<Frame> {
        loop {
            if let Some(frame) = self.parse() {
                return Ok(frame);
            }
            if !self.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    w.write_all(&(payload.len() as u32).to_le_bytes()).await?;
    w.write_all(payload).await
}

/// Writes one bench message: length, header, then the filler (zeros, or the verify pattern).
async fn write_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    filler: &mut [u8],
    seq: u64,
    stamp: u64,
    verify: bool,
) -> io::Result<()> {
    let mut head = [0u8; 4 + HEADER_LEN];
    head[..4].copy_from_slice(&((HEADER_LEN + filler.len()) as u32).to_le_bytes());
    payload::put_header(&mut head[4..], seq, stamp);
    if verify {
        payload::fill(filler, seq);
    }
    w.write_all(&head).await?;
    w.write_all(filler).await
}

async fn write_end<W: AsyncWrite + Unpin>(w: &mut W, sent: u64) -> io::Result<()> {
    w.write_all(&END.to_le_bytes()).await?;
    w.write_all(&sent.to_le_bytes()).await?;
    w.flush().await
}

/// Checks a received message and feeds the tracker; returns its stamp.
fn receive(tracker: &mut SeqTracker, msg: &[u8], verify: bool) -> Option<u64> {
    let Some((seq, stamp)) = payload::header(msg) else {
        tracker.corrupted();
        return None;
    };
    tracker.observe(seq);
    if verify && !payload::check(&msg[HEADER_LEN..], seq) {
        tracker.corrupted();
    }
    Some(stamp)
}

/// Stream server side: counts messages until the end marker, then acknowledges.
async fn sink(stream: TcpStream, verify: bool) -> anyhow::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut reader = FrameReader::new(rd);
    let mut tracker = SeqTracker::default();
    let sent = loop {
        match reader.next().await? {
            Frame::Data(msg) => {
                receive(&mut tracker, &msg, verify);
            }
            Frame::End(sent) => break sent,
        }
    };
    let integrity = tracker.finish(sent);
    let mut ack = Vec::with_capacity(ACK_LEN);
    for v in [
        tracker.received(),
        integrity.lost,
        integrity.duplicated,
        integrity.reordered,
        integrity.corrupted,
    ] {
        ack.extend_from_slice(&v.to_le_bytes());
    }
    wr.write_all(&ack).await?;
    wr.flush().await?;
    Ok(())
}

/// Rr server side: echoes every frame, flushing when no whole frame is left to echo.
async fn echo(stream: TcpStream) -> anyhow::Result<()> {
    let (rd, wr) = stream.into_split();
    let mut reader = FrameReader::new(rd);
    let mut w = BufWriter::with_capacity(WRITE_BUF, wr);
    loop {
        while let Some(frame) = reader.parse() {
            match frame {
                Frame::Data(msg) => write_frame(&mut w, &msg).await?,
                Frame::End(sent) => {
                    write_end(&mut w, sent).await?;
                    return Ok(());
                }
            }
        }
        w.flush().await?;
        if !reader.fill().await? {
            return Ok(());
        }
    }
}

/// Stream client: sends until the limit, then waits for the server's count.
async fn stream_client(
    stream: TcpStream,
    size: usize,
    limit: Limit,
    verify: bool,
) -> anyhow::Result<JobResult> {
    let (mut rd, wr) = stream.into_split();
    let mut w = BufWriter::with_capacity(WRITE_BUF, wr);
    let mut filler = vec![0u8; size - HEADER_LEN];
    let started = Instant::now();
    let mut stopper = Stopper::new(limit, size);
    let mut seq = 0;
    while !stopper.done(seq) {
        write_message(&mut w, &mut filler, seq, 0, verify).await?;
        seq += 1;
    }
    write_end(&mut w, seq).await?;
    let mut ack = [0u8; ACK_LEN];
    rd.read_exact(&mut ack)
        .await
        .context("waiting for the raw-TCP server's count")?;
    let ended = Instant::now();
    let mut ack = &ack[..];
    let received = ack.get_u64_le();
    let integrity = Integrity {
        lost: ack.get_u64_le(),
        duplicated: ack.get_u64_le(),
        reordered: ack.get_u64_le(),
        corrupted: ack.get_u64_le(),
    };
    if received + integrity.lost < seq {
        bail!("the raw-TCP server counted {received} of {seq} messages");
    }
    Ok(JobResult {
        messages: seq,
        integrity,
        rtt: None,
        session: None,
        started,
        ended,
    })
}

/// Rr client at depth 1: send, wait for the echo, repeat; one task, no handoff.
async fn ping_pong_client(
    stream: TcpStream,
    size: usize,
    limit: Limit,
    verify: bool,
    epoch: Instant,
) -> anyhow::Result<JobResult> {
    let (rd, wr) = stream.into_split();
    let mut reader = FrameReader::new(rd);
    let mut w = BufWriter::with_capacity(WRITE_BUF, wr);
    let mut filler = vec![0u8; size - HEADER_LEN];
    let mut stopper = Stopper::new(limit, size);
    let mut tracker = SeqTracker::default();
    let mut hist = new_histogram();
    let mut seq = 0;
    let started = Instant::now();
    while !stopper.done(seq) {
        let stamp = epoch.elapsed().as_nanos() as u64;
        write_message(&mut w, &mut filler, seq, stamp, verify).await?;
        w.flush().await?;
        seq += 1;
        match reader.next().await? {
            Frame::Data(msg) => {
                if let Some(stamp) = receive(&mut tracker, &msg, verify) {
                    let now = epoch.elapsed().as_nanos() as u64;
                    hist.saturating_record(now.saturating_sub(stamp));
                }
            }
            Frame::End(_) => bail!("the raw-TCP echo server ended early"),
        }
    }
    // The last echo is in: the end marker's round trip is not part of the run.
    let ended = Instant::now();
    write_end(&mut w, seq).await?;
    match reader.next().await? {
        Frame::End(_) => {}
        Frame::Data(_) => bail!("an echo came after the last message"),
    }
    Ok(JobResult {
        messages: seq,
        integrity: tracker.finish(seq),
        rtt: Some(hist),
        session: None,
        started,
        ended,
    })
}

/// Rr client at depth > 1: a writer task keeps `depth` messages in flight, this task reads the
/// echoes and times them.
async fn window_client(
    stream: TcpStream,
    size: usize,
    depth: usize,
    limit: Limit,
    verify: bool,
    epoch: Instant,
) -> anyhow::Result<JobResult> {
    let (rd, wr) = stream.into_split();
    let started = Instant::now();
    let window = Arc::new(Semaphore::new(depth));
    let writer = tokio::spawn(window_writer(
        wr,
        size,
        limit,
        verify,
        epoch,
        window.clone(),
    ));
    let mut reader = FrameReader::new(rd);
    let mut tracker = SeqTracker::default();
    let mut hist = new_histogram();
    let mut last_echo = None;
    let sent = loop {
        match reader.next().await? {
            Frame::Data(msg) => {
                let now = epoch.elapsed();
                if let Some(stamp) = receive(&mut tracker, &msg, verify) {
                    hist.saturating_record((now.as_nanos() as u64).saturating_sub(stamp));
                }
                last_echo = Some(now);
                window.add_permits(1);
            }
            Frame::End(sent) => break sent,
        }
    };
    let ended = last_echo.map_or(started, |at| epoch + at);
    let written = writer.await??;
    if written != sent {
        bail!("the writer sent {written} messages but its end marker says {sent}");
    }
    Ok(JobResult {
        messages: sent,
        integrity: tracker.finish(sent),
        rtt: Some(hist),
        session: None,
        started,
        ended,
    })
}

async fn window_writer(
    wr: tokio::net::tcp::OwnedWriteHalf,
    size: usize,
    limit: Limit,
    verify: bool,
    epoch: Instant,
    window: Arc<Semaphore>,
) -> anyhow::Result<u64> {
    let mut w = BufWriter::with_capacity(WRITE_BUF, wr);
    let mut filler = vec![0u8; size - HEADER_LEN];
    let mut stopper = Stopper::new(limit, size);
    let mut seq = 0;
    loop {
        let permit = match window.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                w.flush().await?;
                window.acquire().await?
            }
        };
        permit.forget();
        if stopper.done(seq) {
            break;
        }
        let stamp = epoch.elapsed().as_nanos() as u64;
        write_message(&mut w, &mut filler, seq, stamp, verify).await?;
        seq += 1;
    }
    write_end(&mut w, seq).await?;
    Ok(seq)
}

//! A frame-level shim in front of the client listener's HTTP/2 connections that drops an
//! `:authority` pseudo-header carrying a URL scheme, which the `h2` crate would refuse.
//!
//! Why: `etcdctl endpoint status` / `endpoint hashkv` with `--endpoints=http://h:p` dial
//! the gRPC target `passthrough:///http://h:p`, so grpc-go sends `:authority: http://h:p`.
//! etcd (Go) ignores it; `h2` answers RST_STREAM(PROTOCOL_ERROR) and offers no switch to
//! relax the check. raftkv routes by path and never reads the authority, so removing a
//! malformed one loses nothing.
//!
//! How: the accepted socket is bridged to hyper through an in-memory duplex pipe. A
//! connection that opens with the HTTP/2 preface is re-framed: frames from the client are
//! decoded with h2's own codec (HPACK included), HEADERS are repaired, and every frame is
//! re-encoded towards hyper; frames from hyper go back the same way. Each codec follows the
//! SETTINGS that pass through it (frame size, header table size) so both halves keep the
//! limits the two real endpoints agreed on. Anything else (HTTP/1.1) is copied byte for
//! byte. Flow control stays end to end: DATA and WINDOW_UPDATE frames pass unchanged.
//!
//! This file must not interpret requests beyond that one header; it is called by
//! `serve.rs` for every client connection.

use axum::http::uri::Authority;
use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use h2::frame::{BytesStr, Frame, Pseudo, Settings};
use h2::Codec;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;

/// The HTTP/2 client connection preface (RFC 9113 section 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Bytes buffered in each direction of the pipe to hyper.
const PIPE_BYTES: usize = 256 * 1024;

/// Bridge `tcp` to the returned pipe end (hand it to hyper) on a task of its own.
pub fn bridge(tcp: TcpStream) -> DuplexStream {
    let (hyper_end, our_end) = tokio::io::duplex(PIPE_BYTES);
    tokio::spawn(async move {
        if let Err(e) = shuttle(tcp, our_end).await {
            tracing::debug!(error = %e, "client connection ended with an error");
        }
    });
    hyper_end
}

/// Sniff the preface, then re-frame (HTTP/2) or copy (anything else) until either side ends.
async fn shuttle(mut tcp: TcpStream, mut hyper: DuplexStream) -> std::io::Result<()> {
    let head = read_preface(&mut tcp).await?;
    hyper.write_all(&head).await?;
    if head != PREFACE {
        tokio::io::copy_bidirectional(&mut tcp, &mut hyper).await?;
        return Ok(());
    }
    reframe(tcp, hyper).await.map_err(std::io::Error::other)
}

/// Read until the bytes are the whole preface or stop matching it (an HTTP/1.1 request
/// shorter than the preface must not wait for bytes that never come).
async fn read_preface(tcp: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(PREFACE.len());
    let mut byte = [0u8; 1];
    while head.len() < PREFACE.len() && PREFACE.starts_with(&head) {
        if tcp.read(&mut byte).await? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    Ok(head)
}

/// Forward frames both ways until one side closes; repair HEADERS from the client.
///
/// Frames already decoded on one side are all queued before one flush: a response's
/// HEADERS, DATA and trailers leave in one write (one TCP segment) as hyper would send
/// them, instead of one write per frame.
async fn reframe(tcp: TcpStream, hyper: DuplexStream) -> Result<(), String> {
    let mut client: Codec<TcpStream, Bytes> = Codec::new(tcp);
    let mut server: Codec<DuplexStream, Bytes> = Codec::new(hyper);
    loop {
        tokio::select! {
            frame = client.next() => {
                let Some(mut frame) = frame else { break };
                loop {
                    let mut f = frame.map_err(|e| format!("from client: {e}"))?;
                    if let Frame::Headers(headers) = &mut f {
                        repair_authority(headers.pseudo_mut());
                    }
                    if let Frame::Settings(s) = &f {
                        follow_settings(s, &mut client, &mut server);
                    }
                    server.feed(f).await.map_err(|e| format!("to server: {e}"))?;
                    match client.next().now_or_never() {
                        Some(Some(next)) => frame = next,
                        _ => break,
                    }
                }
                SinkExt::flush(&mut server).await.map_err(|e| format!("to server: {e}"))?;
            }
            frame = server.next() => {
                let Some(mut frame) = frame else { break };
                loop {
                    let f = frame.map_err(|e| format!("from server: {e}"))?;
                    if let Frame::Settings(s) = &f {
                        follow_settings(s, &mut server, &mut client);
                    }
                    client.feed(f).await.map_err(|e| format!("to client: {e}"))?;
                    match server.next().now_or_never() {
                        Some(Some(next)) => frame = next,
                        _ => break,
                    }
                }
                SinkExt::flush(&mut client).await.map_err(|e| format!("to client: {e}"))?;
            }
        }
    }
    let _ = client.close().await;
    let _ = server.close().await;
    Ok(())
}

/// Repair an authority that is not `host[:port]`: `http://h:p` becomes `h:p`; anything
/// still malformed is dropped (an HTTP/2 request may omit `:authority`).
fn repair_authority(pseudo: &mut Pseudo) {
    let Some(authority) = pseudo.authority.as_ref() else {
        return;
    };
    if authority.parse::<Authority>().is_ok() {
        return;
    }
    let without_scheme = authority
        .split_once("://")
        .map_or(&**authority, |(_, rest)| rest);
    let host_port = without_scheme.split('/').next().unwrap_or("");
    pseudo.authority = match host_port.parse::<Authority>() {
        Ok(_) => BytesStr::try_from(Bytes::copy_from_slice(host_port.as_bytes())).ok(),
        Err(_) => None,
    };
}

/// A SETTINGS frame from one peer bounds what is sent to that peer: our codec writing to it
/// (`to_sender`) and our codec reading the other side's frames for it (`from_other`) take
/// the same limits. Client SETTINGS: `to_sender` = client codec, `from_other` = hyper's;
/// hyper's SETTINGS: the other way round.
fn follow_settings<A, B>(
    s: &Settings,
    to_sender: &mut Codec<A, Bytes>,
    from_other: &mut Codec<B, Bytes>,
) where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if s.is_ack() {
        return;
    }
    if let Some(size) = s.max_frame_size() {
        to_sender.set_max_send_frame_size(size as usize);
        from_other.set_max_recv_frame_size(size as usize);
    }
    if let Some(size) = s.header_table_size() {
        // The peer's decoder accepts this much table: so may our encoder towards it, and
        // the other side's encoder towards us.
        to_sender.set_send_header_table_size(size as usize);
        from_other.set_recv_header_table_size(size as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repaired(authority: &str) -> Option<String> {
        let mut pseudo = Pseudo {
            authority: Some(
                BytesStr::try_from(Bytes::copy_from_slice(authority.as_bytes())).unwrap(),
            ),
            ..Pseudo::default()
        };
        repair_authority(&mut pseudo);
        pseudo.authority.map(|a| a.to_string())
    }

    #[test]
    fn authorities_lose_their_scheme_and_path_or_go() {
        assert_eq!(
            repaired("127.0.0.1:2379").as_deref(),
            Some("127.0.0.1:2379")
        );
        assert_eq!(
            repaired("http://127.0.0.1:2379").as_deref(),
            Some("127.0.0.1:2379")
        );
        assert_eq!(repaired("https://h:1/x/y").as_deref(), Some("h:1"));
        assert_eq!(repaired("/var/run/etcd.sock"), None);
    }
}

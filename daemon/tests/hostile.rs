//! Hostile and broken input against real daemons on loopback: each attack
//! closes only its own connection, allocates nothing large, and everyone
//! else is served as before.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use arca_daemon::cluster::{ClusterOptions, LocalCluster};
use arca_daemon::listener::MAX_HANDSHAKES;
use arca_shared::connection::encode;
use arca_shared::handshake;
use arca_shared::keys::ClusterKey;
use arca_shared::limits::{CONTROL_FRAME_MAX, HANDSHAKE_TIMEOUT};
use arca_shared::protocol::{Item, NewChunk, PutFile, UploadGrant, items_digest};
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::vault::ChunkId;
use arca_shared::{BlobHash, Connection, FrameError, Message};
use common::{authenticated, rss_kib, still_serving};
use serde_bytes::ByteBuf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn cluster(servers: usize) -> (tempfile::TempDir, LocalCluster) {
    let dir = tempfile::tempdir().unwrap();
    let options = ClusterOptions {
        servers,
        ..ClusterOptions::default()
    };
    let cluster = LocalCluster::start(dir.path(), options).await.unwrap();
    (dir, cluster)
}

/// Waits until the peer closes the stream, failing after `within`.
async fn closed_within(stream: &mut (impl AsyncRead + Unpin), within: Duration) {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the daemon kept the connection open"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_frames_close_only_their_connection() {
    let (_dir, cluster) = cluster(2).await;
    let targets = [
        cluster.manager_addr.clone(),
        cluster.server_addr(0).to_owned(),
    ];
    let before = rss_kib();
    for addr in &targets {
        // Before authentication: a huge length is refused at once.
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        closed_within(&mut raw, Duration::from_secs(2)).await;

        // After authentication: over the cap, truncated, not MessagePack,
        // out of order, unknown type.
        let attacks: Vec<Vec<u8>> = vec![
            ((CONTROL_FRAME_MAX as u32) + 1).to_be_bytes().to_vec(),
            [&100u32.to_be_bytes()[..], b"short"].concat(),
            [&4u32.to_be_bytes()[..], &[0xc1, 0xc1, 0xc1, 0xc1]].concat(),
            frame(&encode(&Message::Welcome).unwrap()),
            frame(&rmp_serde::to_vec_named(&("NoSuchMessage", 1)).unwrap()),
        ];
        for attack in attacks {
            let truncated = attack.len() == 4 + 5;
            let mut raw = authenticated(addr, &cluster.key).await.into_stream();
            raw.write_all(&attack).await.unwrap();
            if truncated {
                // A truncated frame is a silent peer: it is timed out, not waited on forever.
                raw.shutdown().await.unwrap();
            }
            closed_within(&mut raw, Duration::from_secs(35)).await;
            still_serving(&cluster).await;
        }
    }
    assert!(
        rss_kib() < before + 64 * 1024,
        "memory grew from {before} KiB to {} KiB",
        rss_kib()
    );
    cluster.shutdown().await;
}

fn frame(body: &[u8]) -> Vec<u8> {
    [&(body.len() as u32).to_be_bytes()[..], body].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_secret_is_refused_before_anything_else() {
    let (_dir, cluster) = cluster(1).await;
    let (stranger, _) = ClusterKey::random().unwrap();
    for addr in [cluster.manager_addr.as_str(), cluster.server_addr(0)] {
        let refused = handshake::connect(addr, &stranger.links().connector).await;
        assert!(
            matches!(refused, Err(FrameError::Auth(_))),
            "{:?}",
            refused.err()
        );
        // Requests in the clear, without TLS, are not answered either.
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(&frame(&encode(&Message::Status).unwrap()))
            .await
            .unwrap();
        closed_within(&mut raw, Duration::from_secs(5)).await;
    }
    still_serving(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peers_are_timed_out_and_do_not_block_others() {
    let (_dir, cluster) = cluster(1).await;
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(TcpStream::connect(&cluster.manager_addr).await.unwrap());
    }
    // A trickler: one byte at a time, never a whole frame.
    let mut trickler = TcpStream::connect(&cluster.manager_addr).await.unwrap();
    trickler.write_all(&[0]).await.unwrap();
    still_serving(&cluster).await;
    let started = Instant::now();
    for stream in &mut silent {
        closed_within(stream, HANDSHAKE_TIMEOUT + Duration::from_secs(3)).await;
    }
    trickler.write_all(&[0]).await.ok();
    closed_within(&mut trickler, Duration::from_secs(3)).await;
    assert!(started.elapsed() < HANDSHAKE_TIMEOUT + Duration::from_secs(3));
    still_serving(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_accept_no_bytes_and_serve_no_blob_without_a_valid_ticket() {
    let (_dir, cluster) = cluster(2).await;
    let status = cluster.status().await.unwrap();
    let server = status
        .servers
        .iter()
        .find(|s| s.addr == cluster.server_addr(0))
        .unwrap()
        .id;
    let items = vec![Item {
        hash: BlobHash::of(b"x"),
        size: 1,
    }];
    let hash = items_digest(&items);
    let (stranger, _) = ClusterKey::random().unwrap();
    let store = |ticket| Message::Store {
        ticket,
        items: items.clone(),
    };
    let cases = [
        store(Ticket::issue(
            &stranger,
            TicketKind::Store,
            1,
            server,
            hash,
            1,
        )),
        store(Ticket::issue(
            &cluster.key,
            TicketKind::Fetch,
            2,
            server,
            hash,
            1,
        )),
        store(Ticket::issue(
            &cluster.key,
            TicketKind::Store,
            3,
            server + 1,
            hash,
            1,
        )),
        // A genuine ticket for other files.
        store(Ticket::issue(
            &cluster.key,
            TicketKind::Store,
            7,
            server,
            BlobHash::of(b"y"),
            1,
        )),
        Message::Fetch {
            tickets: vec![Ticket::issue(
                &stranger,
                TicketKind::Fetch,
                4,
                server,
                hash,
                1,
            )],
        },
        Message::Upload {
            ticket: Ticket::issue(&cluster.key, TicketKind::Upload, 5, server, hash, 1),
        },
    ];
    for request in cases {
        let mut conn = authenticated(cluster.server_addr(0), &cluster.key).await;
        let answer = conn.call(&request).await;
        assert!(
            matches!(answer, Err(FrameError::Refused(_))),
            "{request:?}: {answer:?}"
        );
    }
    // A valid store ticket works once only.
    let ticket = Ticket::issue(&cluster.key, TicketKind::Store, 6, server, hash, 1);
    let mut conn = authenticated(cluster.server_addr(0), &cluster.key).await;
    assert_eq!(
        conn.call(&store(ticket.clone())).await.unwrap(),
        Message::Accepted
    );
    let mut again = authenticated(cluster.server_addr(0), &cluster.key).await;
    assert!(again.call(&store(ticket)).await.is_err());
    cluster.shutdown().await;
}

/// Asks the manager for an upload ticket and presents it to the primary.
async fn start_upload(
    cluster: &LocalCluster,
    size: u64,
    hash: BlobHash,
) -> (Connection, Connection) {
    let mut manager = authenticated(&cluster.manager_addr, &cluster.key).await;
    let Message::ChunkPlan {
        upload: Some(UploadGrant { primary, ticket }),
    } = manager.call(&put_chunks(size, hash)).await.unwrap()
    else {
        panic!("no ticket");
    };
    let mut upload = authenticated(&primary, &cluster.key).await;
    assert_eq!(
        upload.call(&Message::Upload { ticket }).await.unwrap(),
        Message::Accepted
    );
    (manager, upload)
}

fn put_chunks(size: u64, hash: BlobHash) -> Message {
    Message::PutChunks {
        client: "mallory".into(),
        chunks: vec![NewChunk {
            id: ChunkId(hash.0),
            hash,
            size,
            plain_size: size,
        }],
        exclude: vec![],
    }
}

fn put_files(name: &str) -> Message {
    Message::PutFiles {
        client: "mallory".into(),
        files: vec![PutFile {
            name: name.into(),
            size: 1,
            meta: arca_shared::meta::FileMeta {
                kind: arca_shared::meta::FileKind::File,
                mode: 0o600,
                mtime_ns: 0,
                owner: None,
            },
            chunks: vec![ChunkId([1; 32])],
            continued: 0,
        }],
    }
}

fn chunk(bytes: &[u8]) -> Message {
    Message::Chunk {
        data: ByteBuf::from(bytes.to_vec()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_and_hashes_that_lie_are_rejected_and_nothing_is_kept() {
    let (dir, cluster) = cluster(3).await;
    let content = b"the real content".to_vec();
    let hash = BlobHash::of(&content);
    let size = content.len() as u64;
    let lies: [(&str, Vec<Message>); 3] = [
        ("fewer", vec![chunk(&content[..5]), Message::End]),
        ("more", vec![chunk(&content), chunk(b"extra")]),
        ("other", vec![chunk(b"not the content!"), Message::End]),
    ];
    for (name, frames) in lies {
        let (mut manager, mut upload) = start_upload(&cluster, size, hash).await;
        for frame in frames {
            if upload.send(&frame).await.is_err() {
                break;
            }
        }
        let verdict = manager.recv().await;
        assert!(
            matches!(verdict, Err(FrameError::Refused(_))),
            "{name}: {verdict:?}"
        );
    }
    // Nothing was committed, and no copy of anything is visible.
    let mut manager = authenticated(&cluster.manager_addr, &cluster.key).await;
    manager
        .send(&Message::List {
            client: "mallory".into(),
            name: None,
        })
        .await
        .unwrap();
    assert_eq!(manager.recv().await.unwrap(), Message::End);
    let visible = walk(dir.path())
        .into_iter()
        .filter(|p| p.contains("/blobs/") || p.contains("/packs/"))
        .count();
    assert_eq!(visible, 0);
    cluster.shutdown().await;
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_escape_are_refused_by_the_manager() {
    let (_dir, cluster) = cluster(2).await;
    let mut manager = authenticated(&cluster.manager_addr, &cluster.key).await;
    let long = "x".repeat(1025);
    for name in [
        "../etc/passwd",
        "/abs",
        "a/../b",
        "a\\b",
        "a\0b",
        "",
        "a//b",
        long.as_str(),
    ] {
        let answer = manager.call(&put_files(name)).await;
        assert!(
            matches!(&answer, Err(FrameError::Refused(reason)) if reason.contains("bad name")),
            "{name:?}: {answer:?}"
        );
        let answer = manager
            .call(&Message::GetBegin {
                client: "../mallory".into(),
                name: "x".into(),
                version: None,
            })
            .await;
        assert!(
            matches!(&answer, Err(FrameError::Refused(reason)) if reason.contains("bad client"))
        );
    }
    cluster.shutdown().await;
}

/// A TCP connection from `host`, a loopback address other than 127.0.0.1.
async fn connect_from(host: [u8; 4], to: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((host, 0).into()).unwrap();
    socket.connect(to.parse().unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_host_does_not_crowd_out_another() {
    let (_dir, cluster) = cluster(1).await;
    let addr = cluster.manager_addr.clone();
    // A slow peer: connected first, and silent through the whole flood.
    let slow = TcpStream::connect(&addr).await.unwrap();
    let mut flood = Vec::new();
    for _ in 0..(MAX_HANDSHAKES + 200) {
        flood.push(connect_from([127, 0, 0, 2], &addr).await);
    }
    // Accepted after every flood connection before it, so they all were.
    still_serving(&cluster).await;
    let mut slow = handshake::initiate(slow, &cluster.key.links().connector)
        .await
        .unwrap();
    let status = slow.call(&Message::Status).await.unwrap();
    assert!(matches!(status, Message::Cluster { .. }), "{status:?}");
    drop(flood);
    cluster.shutdown().await;
}

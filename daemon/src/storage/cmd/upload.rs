//! `Upload`: this server is the primary. It streams the client's bytes on to
//! every replica as they arrive, verifies the hash on the way, relays each
//! replica's progress to the client, and keeps no copy itself.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use arca_shared::connection::{FrameReader, FrameWriter};
use arca_shared::limits::IDLE_TIMEOUT;
use arca_shared::protocol::{Item, ReplicaTarget};
use arca_shared::sync::LockAnyway;
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::types::ServerId;
use arca_shared::{Connection, FrameError, Message};
use futures::future::try_join_all;
use tokio::sync::mpsc;

use crate::error::Error;
use crate::storage::item_check::ItemCheck;
use crate::storage::{Report, Server};

enum Event {
    Written(usize, u64),
    Stored(usize),
}

/// Remembers the first replica that failed, so the manager can avoid it.
#[derive(Default)]
struct Blame(Mutex<Option<usize>>);

impl Blame {
    fn replica(&self, i: usize, what: &str, e: impl std::fmt::Display) -> Error {
        self.0.lock_anyway().get_or_insert(i);
        Error::Refused(format!("replica {} {what}: {e}", i + 1))
    }

    fn suspect(&self) -> Option<usize> {
        *self.0.lock_anyway()
    }
}

pub(crate) async fn run(
    server: &Server,
    conn: &mut Connection,
    ticket: Ticket,
) -> Result<(), Error> {
    server.check(&ticket, TicketKind::Upload)?;
    let plan = server
        .plans
        .lock_anyway()
        .remove(&ticket.op)
        .ok_or_else(|| {
            Error::Refused("no upload is prepared for this ticket (used or expired)".into())
        })?;
    server.check_items(&ticket, TicketKind::Upload, &plan.items)?;
    let holders: Vec<ServerId> = plan.replicas.iter().map(|r| r.ticket.server).collect();
    let blame = Blame::default();
    match pipeline(
        server,
        conn,
        &plan.items,
        &plan.replicas,
        &plan.reports,
        &blame,
    )
    .await
    {
        Ok(()) => {
            let _ = plan.reports.send(Report::Done(holders)).await;
            Ok(())
        }
        Err(e) => {
            let suspects = blame.suspect().map(|i| holders[i]).into_iter().collect();
            let reason = e.to_string();
            let _ = plan.reports.send(Report::Failed { reason, suspects }).await;
            Err(e)
        }
    }
}

async fn pipeline(
    server: &Server,
    client: &mut Connection,
    items: &[Item],
    replicas: &[ReplicaTarget],
    reports: &mpsc::Sender<Report>,
    blame: &Blame,
) -> Result<(), Error> {
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (i, target) in replicas.iter().enumerate() {
        let conn = server
            .open_store(target, items)
            .await
            .map_err(|e| blame.replica(i, "refused the upload", e))?;
        readers.push(conn.reader);
        writers.push(conn.writer);
    }
    client.send(&Message::Accepted).await?;

    let (events, rx) = mpsc::channel(64);
    let watch_replicas: Vec<_> = readers
        .iter_mut()
        .enumerate()
        .map(|(i, reader)| watch_replica(i, reader, events.clone(), blame))
        .collect();
    drop(events);
    tokio::try_join!(
        forward(&mut client.reader, &mut writers, items, blame),
        relay(&mut client.writer, rx, replicas.len(), reports),
        try_join_all(watch_replicas),
    )?;
    Ok(())
}

/// Client → replicas: each chunk is checked, hashed and sent on at once, as
/// the very frame that came; each file ends with `End` once its size and
/// hash are right.
async fn forward(
    client: &mut FrameReader,
    replicas: &mut [FrameWriter],
    items: &[Item],
    blame: &Blame,
) -> Result<(), Error> {
    for (n, item) in items.iter().enumerate() {
        let last = n + 1 == items.len();
        let mut check = ItemCheck::new(*item);
        loop {
            let frame = client.recv_data().await?;
            let end = match frame.chunk() {
                Some(data) => {
                    check.chunk(data)?;
                    false
                }
                None => match frame.message()? {
                    Message::End => {
                        check.end()?;
                        true
                    }
                    other => return Err(FrameError::unexpected(&other, "Chunk or End").into()),
                },
            };
            for (i, replica) in replicas.iter_mut().enumerate() {
                // Many small files go out in few writes; the last one flushes.
                let sent = if end && last {
                    replica.send_encoded(frame.body()).await
                } else {
                    replica.feed_encoded(frame.body()).await
                };
                sent.map_err(|e| blame.replica(i, "stopped receiving", e))?;
            }
            if end {
                break;
            }
        }
    }
    Ok(())
}

/// Replica → events: its progress, then its confirmation.
async fn watch_replica(
    i: usize,
    replica: &mut FrameReader,
    events: mpsc::Sender<Event>,
    blame: &Blame,
) -> Result<(), Error> {
    loop {
        let event = match replica.recv().await {
            Ok(Message::Written { bytes }) => Event::Written(i, bytes),
            Ok(Message::Stored) => Event::Stored(i),
            Ok(other) => {
                let e = FrameError::unexpected(&other, "Written or Stored");
                return Err(blame.replica(i, "failed", e));
            }
            Err(e) => return Err(blame.replica(i, "failed", e)),
        };
        let done = matches!(event, Event::Stored(_));
        // The relay only stops early when the upload is failing anyway.
        let _ = events.send(event).await;
        if done {
            return Ok(());
        }
    }
}

/// Events → client (every replica's progress) and manager (the slowest's).
async fn relay(
    client: &mut FrameWriter,
    mut events: mpsc::Receiver<Event>,
    replica_count: usize,
    reports: &mpsc::Sender<Report>,
) -> Result<(), Error> {
    let mut written = vec![0u64; replica_count];
    let mut stored = vec![false; replica_count];
    let mut last_report = Instant::now();
    while !stored.iter().all(|s| *s) {
        let event = tokio::time::timeout(IDLE_TIMEOUT, events.recv())
            .await
            .map_err(|_| FrameError::Timeout(IDLE_TIMEOUT))?
            .ok_or(Error::Refused("replica connections ended".into()))?;
        match event {
            Event::Written(i, bytes) => {
                written[i] = bytes;
                client
                    .send(&Message::ReplicaProgress {
                        replica: i as u8,
                        bytes,
                    })
                    .await?;
                if last_report.elapsed() > Duration::from_millis(500) {
                    last_report = Instant::now();
                    let slowest = written.iter().copied().min().unwrap_or(0);
                    let _ = reports.try_send(Report::Progress(slowest));
                }
            }
            Event::Stored(i) => stored[i] = true,
        }
    }
    Ok(client.send(&Message::Stored).await?)
}

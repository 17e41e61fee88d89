//! `Prepare`: the manager announces an upload and where it must be forwarded;
//! this connection then relays the upload's progress and outcome back.

use arca_shared::limits::{IDLE_TIMEOUT, LIST_MAX, TICKET_TTL};
use arca_shared::protocol::{Item, ReplicaTarget};
use arca_shared::reply::Done;
use arca_shared::sync::LockAnyway;
use arca_shared::{Connection, Message};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::storage::{Plan, Report, Server};

/// Most replicas one upload may be forwarded to.
const MAX_REPLICAS: usize = 16;

pub(crate) async fn run(
    server: &Server,
    conn: &mut Connection,
    upload_id: u64,
    replicas: Vec<ReplicaTarget>,
    items: Vec<Item>,
) -> Result<(), Error> {
    if replicas.is_empty() || replicas.len() > MAX_REPLICAS {
        return Err(Error::Refused(format!(
            "an upload needs 1 to {MAX_REPLICAS} replicas, not {}",
            replicas.len()
        )));
    }
    if items.is_empty() || items.len() > LIST_MAX {
        return Err(Error::Refused(format!(
            "an upload carries 1 to {LIST_MAX} files, not {}",
            items.len()
        )));
    }
    let (reports, mut rx) = mpsc::channel(64);
    server.plans.lock_anyway().insert(
        upload_id,
        Plan {
            replicas,
            items,
            reports,
        },
    );
    conn.send(&Message::Ok).await?;

    let mut wait = TICKET_TTL;
    loop {
        let report = match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(report)) => report,
            Ok(None) => Report::Failed {
                reason: "the upload ended without a result".into(),
                suspects: Vec::new(),
            },
            Err(_) => {
                let never_started = server.plans.lock_anyway().remove(&upload_id).is_some();
                let reason = if never_started {
                    "the client never started the upload".into()
                } else {
                    format!("the upload made no progress for {wait:?}")
                };
                Report::Failed {
                    reason,
                    suspects: Vec::new(),
                }
            }
        };
        wait = IDLE_TIMEOUT;
        match report {
            Report::Progress(bytes) => conn.send(&Message::UploadProgress { bytes }).await?,
            Report::Done(holders) => {
                let Done = conn.request(&Message::UploadDone { holders }).await?;
                return Ok(());
            }
            Report::Failed { reason, suspects } => {
                return Ok(conn
                    .send(&Message::UploadFailed { reason, suspects })
                    .await?);
            }
        }
    }
}

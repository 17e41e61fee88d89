//! `arca status [--json]`: the cluster as the manager sees it.

use std::process::ExitCode;

use serde_json::json;

use crate::client::{ClientError, Session, Settings};
use crate::format;
use crate::out;

/// Versions short of copies named one by one, at most.
const SHORT_SHOWN: usize = 20;

pub async fn run(settings: Settings, json: bool) -> Result<ExitCode, ClientError> {
    let mut session = Session::connect(settings).await?;
    let status = session.status().await?;
    let at_risk = session.at_risk().await?;
    if json {
        let at_risk: Vec<_> = at_risk
            .iter()
            .map(|v| {
                json!({
                    "name": v.name,
                    "version": v.version,
                    "live_copies": v.live,
                    "damaged_copies": v.damaged,
                })
            })
            .collect();
        let servers: Vec<_> = status
            .servers
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "addr": s.addr,
                    "zone": s.zone,
                    "alive": s.alive,
                    "latency_ms": s.latency_ms,
                    "stored_bytes": s.stored_bytes,
                    "capacity_bytes": s.capacity_bytes,
                    "free_bytes": s.free_bytes,
                    "blobs": s.blobs,
                    "read_only": s.read_only,
                    "score": s.score,
                })
            })
            .collect();
        out::line(format_args!(
            "{}",
            json!({
                "replicas": status.replicas,
                "under_replicated": status.under_replicated,
                "healing": status.healing,
                "moving": status.moving,
                "stale_catalog": status.stale_catalog,
                "at_risk": at_risk,
                "servers": servers,
            })
        ));
        return Ok(ExitCode::SUCCESS);
    }
    if status.stale_catalog {
        out::line(
            "WARNING: the manager's catalog is behind, or not the same as, the snapshots its \
             servers keep; it records no backup until its operator runs \
             `daemon recover --force` (see its log)",
        );
    }
    let alive = status.servers.iter().filter(|s| s.alive).count();
    out::line(format_args!(
        "{alive} of {} servers alive; every file is kept on {} servers",
        status.servers.len(),
        status.replicas
    ));
    out::line(format_args!(
        "{} stored contents under-replicated, {} copies being made, {} being moved to even the load",
        status.under_replicated, status.healing, status.moving
    ));
    out::line(format_args!(
        "{:<4} {:<22} {:<8} {:<6} {:>10} {:>10} {:>10} {:>6} {:>6}",
        "ID", "ADDRESS", "ZONE", "STATE", "LATENCY", "STORED", "CAPACITY", "BLOBS", "SCORE"
    ));
    for s in &status.servers {
        out::line(format_args!(
            "{:<4} {:<22} {:<8} {:<6} {:>7.2} ms {:>10} {:>10} {:>6} {:>6}",
            format!("s{}", s.id),
            s.addr,
            s.zone.as_deref().unwrap_or("-"),
            match (s.alive, s.read_only) {
                (false, _) => "dead",
                (true, true) => "ro",
                (true, false) => "alive",
            },
            s.latency_ms,
            format::bytes(s.stored_bytes),
            format::bytes(s.capacity_bytes),
            s.blobs,
            s.score.map_or("-".into(), |v| format!("{v:.2}")),
        ));
    }
    // Every version lost or damaged is named; of those only short of
    // copies (healing makes them whole), the first few.
    let mut short = 0;
    for v in &at_risk {
        let state = match (v.live, v.damaged) {
            (0, 0) => "LOST: no copy on any live server".to_string(),
            (0, _) => "DAMAGED: no intact copy; cannot be restored intact".to_string(),
            (live, _) => {
                short += 1;
                if short > SHORT_SHOWN {
                    continue;
                }
                format!("under-replicated: {live} of {} copies", status.replicas)
            }
        };
        out::line(format_args!("{}  v{}  {state}", v.name, v.version));
    }
    if short > SHORT_SHOWN {
        out::line(format_args!(
            "… and {} more under-replicated (`arca status --json` lists them all)",
            short - SHORT_SHOWN
        ));
    }
    Ok(ExitCode::SUCCESS)
}

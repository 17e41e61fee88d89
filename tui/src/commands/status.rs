//! `arca status [--json]`: the cluster as the manager sees it.

use std::process::ExitCode;

use serde_json::json;

use crate::client::{ClientError, Session, Settings};
use crate::format;

pub async fn run(settings: Settings, json: bool) -> Result<ExitCode, ClientError> {
    let status = Session::connect(settings).await?.status().await?;
    if json {
        let servers: Vec<_> = status
            .servers
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "addr": s.addr,
                    "alive": s.alive,
                    "latency_ms": s.latency_ms,
                    "stored_bytes": s.stored_bytes,
                    "capacity_bytes": s.capacity_bytes,
                    "free_bytes": s.free_bytes,
                    "blobs": s.blobs,
                    "score": s.score,
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "replicas": status.replicas,
                "under_replicated": status.under_replicated,
                "healing": status.healing,
                "servers": servers,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let alive = status.servers.iter().filter(|s| s.alive).count();
    println!(
        "{alive} of {} servers alive; every file is kept on {} servers",
        status.servers.len(),
        status.replicas
    );
    println!(
        "{} stored contents under-replicated, {} copies being made",
        status.under_replicated, status.healing
    );
    println!(
        "{:<4} {:<22} {:<6} {:>10} {:>10} {:>10} {:>6} {:>6}",
        "ID", "ADDRESS", "STATE", "LATENCY", "STORED", "CAPACITY", "BLOBS", "SCORE"
    );
    for s in &status.servers {
        println!(
            "{:<4} {:<22} {:<6} {:>7.2} ms {:>10} {:>10} {:>6} {:>6}",
            format!("s{}", s.id),
            s.addr,
            if s.alive { "alive" } else { "dead" },
            s.latency_ms,
            format::bytes(s.stored_bytes),
            format::bytes(s.capacity_bytes),
            s.blobs,
            s.score.map_or("-".into(), |v| format!("{v:.2}")),
        );
    }
    Ok(ExitCode::SUCCESS)
}

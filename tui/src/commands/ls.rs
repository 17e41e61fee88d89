//! `arca ls [NAME] [--json]`: the catalog, or every version of one name.

use std::process::ExitCode;

use arca_shared::meta::FileKind;
use arca_shared::protocol::FileEntry;
use serde_json::json;

use crate::client::{ClientError, Session, Settings};
use crate::{format, out};

pub async fn run(
    settings: Settings,
    name: Option<&str>,
    json: bool,
) -> Result<ExitCode, ClientError> {
    let files = Session::connect(settings).await?.list(name).await?;
    if json {
        let list: Vec<_> = files.iter().map(to_json).collect();
        out::line(serde_json::Value::Array(list));
    } else if files.is_empty() {
        out::line("no backups yet; `arca put PATH` makes one");
    } else {
        out::line(format_args!(
            "{:<40} {:>7} {:>10} {:>8}  {:<12}  TIME",
            "NAME", "VERSION", "SIZE", "REPLICAS", "HASH"
        ));
        for f in &files {
            let name = match f.meta.as_ref().map(|m| &m.kind) {
                Some(FileKind::Symlink { target }) => {
                    format!("{} -> {}", f.name, String::from_utf8_lossy(target))
                }
                _ => f.name.clone(),
            };
            out::line(format_args!(
                "{:<40} {:>7} {:>10} {:>8}  {:<12}  {}",
                name,
                f.version,
                format::bytes(f.size),
                f.replicas,
                f.hash.short(),
                format::time(f.created_ms),
            ));
            // Made before chunks: kept as it was, readable on the servers.
            if f.plain {
                out::line(format_args!(
                    "{:<40} (stored unencrypted, before chunks; back it up again to encrypt it)",
                    ""
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn to_json(f: &FileEntry) -> serde_json::Value {
    json!({
        "name": f.name,
        "version": f.version,
        "size": f.size,
        "hash": f.hash.to_hex(),
        "replicas": f.replicas,
        "created_ms": f.created_ms,
        "encrypted": !f.plain,
        "kind": match f.meta.as_ref().map(|m| &m.kind) {
            Some(FileKind::Symlink { .. }) => "symlink",
            _ => "file",
        },
    })
}

//! `arca verify [NAME]`: every copy hashed where it lives; corrupt copies are
//! reported here and healed by the cluster.

use std::process::ExitCode;

use crate::client::{ClientError, Session, Settings};

pub async fn run(settings: Settings, name: Option<&str>) -> Result<ExitCode, ClientError> {
    let copies = Session::connect(settings).await?.verify(name).await?;
    if copies.is_empty() {
        println!("nothing to verify");
        return Ok(ExitCode::SUCCESS);
    }
    let mut corrupt = 0;
    for c in &copies {
        let verdict = if c.ok { "ok" } else { "CORRUPT (being healed)" };
        corrupt += usize::from(!c.ok);
        println!("{}  v{}  copy {}  {verdict}", c.name, c.version, c.copy);
    }
    println!("{} copies checked, {corrupt} corrupt", copies.len());
    Ok(if corrupt > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

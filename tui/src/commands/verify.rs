//! `arca verify [NAME]`: every copy hashed where it lives. Damaged copies
//! are reported here and healed by the cluster; a version short of intact
//! copies, or with none, is named.

use std::process::ExitCode;

use arca_shared::protocol::VersionCheck;

use crate::client::{ClientError, Session, Settings};
use crate::out;

pub async fn run(settings: Settings, name: Option<&str>) -> Result<ExitCode, ClientError> {
    let versions = Session::connect(settings).await?.verify(name).await?;
    if versions.is_empty() {
        out::line("nothing to verify");
        return Ok(ExitCode::SUCCESS);
    }
    let (mut copies, mut damaged, mut short) = (0, 0, 0);
    for v in &versions {
        for (i, ok) in v.copies.iter().enumerate() {
            let verdict = if *ok { "ok" } else { "DAMAGED (set aside)" };
            out::line(format_args!(
                "{}  v{}  copy {}  {verdict}",
                v.name,
                v.version,
                i + 1
            ));
        }
        copies += v.copies.len();
        damaged += v.copies.iter().filter(|ok| !**ok).count();
        if let Some(problem) = shortfall(v) {
            short += 1;
            out::line(format_args!("{}  v{}  {problem}", v.name, v.version));
        }
    }
    out::line(format_args!(
        "{} versions, {copies} copies checked, {damaged} damaged, {short} short of copies",
        versions.len()
    ));
    Ok(if damaged > 0 || short > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// What is wrong with a version that has fewer intact copies than wanted.
fn shortfall(v: &VersionCheck) -> Option<String> {
    let intact = v.intact();
    // An empty file or a link stores no chunk: nothing can be short.
    if intact >= v.wanted || v.chunks == 0 {
        return None;
    }
    let down = match v.unreachable {
        0 => String::new(),
        n => format!("; {n} on servers that are down"),
    };
    Some(if intact > 0 {
        format!(
            "UNDER-REPLICATED: {intact} of {} intact copies{down}; being healed",
            v.wanted
        )
    } else if v.unreachable > 0 {
        format!("UNAVAILABLE: no intact copy on a live server{down}")
    } else if v.damaged > 0 || v.copies.iter().any(|ok| !ok) {
        "DAMAGED: every copy failed its hash; it cannot be restored intact \
         (the damaged copies are kept). Back the file up again if you still have it."
            .to_string()
    } else {
        "LOST: no server holds a copy. Back the file up again if you still have it.".to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(chunks: u32, copies: Vec<bool>) -> VersionCheck {
        VersionCheck {
            name: "x".into(),
            version: 1,
            chunks,
            copies,
            unreachable: 0,
            damaged: 0,
            wanted: 2,
        }
    }

    #[test]
    fn only_stored_chunks_can_be_short() {
        // An empty file or a link: nothing stored, nothing short.
        assert_eq!(shortfall(&check(0, vec![])), None);
        assert_eq!(shortfall(&check(3, vec![true, true])), None);
        let short = shortfall(&check(3, vec![true])).unwrap();
        assert!(short.starts_with("UNDER-REPLICATED"), "{short}");
        let lost = shortfall(&check(1, vec![])).unwrap();
        assert!(lost.starts_with("LOST"), "{lost}");
    }
}

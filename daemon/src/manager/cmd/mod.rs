//! One file per request the manager answers.

pub(crate) mod at_risk;
pub(crate) mod corrupt;
pub(crate) mod get;
pub(crate) mod have;
pub(crate) mod keys;
pub(crate) mod list;
pub(crate) mod put_chunks;
pub(crate) mod put_files;
pub(crate) mod register;
pub(crate) mod remove;
pub(crate) mod status;
pub(crate) mod verify;

use arca_shared::name;

use super::refuse;
use crate::error::Error;

/// Client names namespace the catalog; they follow the rules for names.
pub(crate) fn check_client(client: &str) -> Result<(), Error> {
    name::validate(client).or_else(|e| refuse(format!("bad client name {client:?}: {e}")))
}

pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    name::validate(name).or_else(|e| refuse(format!("bad name {name:?}: {e}")))
}

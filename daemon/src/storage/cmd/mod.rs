//! One file per request a storage server answers.

pub(crate) mod delete;
pub(crate) mod fetch;
pub(crate) mod inventory;
pub(crate) mod prepare;
pub(crate) mod quarantine;
pub(crate) mod replicate;
pub(crate) mod snapshot;
pub(crate) mod store;
pub(crate) mod upload;

//! `zab-thin --offline`: thins a list of snapshot records from stdin without
//! touching ZFS. Not built yet.

use zab_core::error::Error;

use crate::cli::Args;

pub fn run(_args: &Args) -> Result<(), Error> {
    Err(Error::Usage("--offline is not built yet".into()))
}

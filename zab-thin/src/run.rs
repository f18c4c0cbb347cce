//! zab-thin with ZFS. Not built yet.

use zab_core::error::Error;

use crate::cli::Args;

pub fn run(_args: &Args) -> Result<(), Error> {
    Err(Error::Usage("thinning on ZFS is not built yet".into()))
}

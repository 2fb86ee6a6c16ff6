//! The write-ahead log: the durable record of Raft entries and hard state.
#![deny(missing_docs)]

mod disk;
mod error;
mod mem_disk;
mod open;
mod record;
mod segment;
mod window;
mod writer;

pub use disk::{Disk, DiskFile, FsDisk, FsFile};
pub use error::WalError;
pub use mem_disk::{MemDisk, MemFile};
pub use open::Recovered;
pub use record::RECORD_PAYLOAD_BYTES_MAX;
pub use writer::{Wal, WalOptions};

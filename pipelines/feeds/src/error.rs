//! The one error type of the crate: failures that stop a whole file.
//!
//! Anything that affects a single record is a [`crate::Reject`] and anything
//! that affects a statement's arithmetic is a [`crate::Finding`]; only a file
//! that cannot be read at all, or is not the expected format, is a `FeedError`.

use std::io;

/// A failure that rejects a whole file (or an I/O failure that ends a stream).
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Reading the underlying file or stream failed.
    #[error("{source_name}: read error: {error}")]
    Io {
        /// File name or label of the stream.
        source_name: String,
        /// The underlying I/O error.
        #[source]
        error: io::Error,
    },
    /// The bytes are not the requested format at all.
    #[error("{source_name}: not a {format} file: {reason}")]
    NotFormat {
        /// File name or label of the stream.
        source_name: String,
        /// The format that was expected.
        format: String,
        /// Why the file was not recognised.
        reason: String,
    },
    /// Auto-detection found no known format.
    #[error("{source_name}: unknown feed format (not MT940/MT942, camt.05x, NACHA, BAI2 or CSV)")]
    UnknownFormat {
        /// File name or label of the stream.
        source_name: String,
    },
    /// A CSV file was given without the profile that describes its layout.
    #[error("{source_name}: CSV feeds need a profile: pass --profile FILE")]
    ProfileRequired {
        /// File name or label of the stream.
        source_name: String,
    },
    /// A CSV feed profile is invalid.
    #[error("invalid CSV profile {name}: {reason}")]
    Profile {
        /// Profile file or name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl FeedError {
    pub(crate) fn io(source_name: &str, error: io::Error) -> Self {
        FeedError::Io { source_name: source_name.to_owned(), error }
    }

    pub(crate) fn not_format(source_name: &str, format: &str, reason: impl Into<String>) -> Self {
        FeedError::NotFormat { source_name: source_name.to_owned(), format: format.to_owned(), reason: reason.into() }
    }
}

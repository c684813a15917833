//! Entry points: format names and detection, and opening a stream or file
//! as a [`Feed`] — one iterator of [`Item`]s whatever the format.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bai2::{self, Bai2Reader};
use crate::camt::{self, CamtReader};
use crate::csv_feed::{self, CsvReader};
use crate::error::FeedError;
use crate::model::{Item, SourceInfo};
use crate::mt940::{self, Mt940Reader};
use crate::nacha::{self, NachaReader};
use crate::profile::CsvProfile;
use crate::text::{bom_aware, peek, transcoding};

/// How many leading bytes detection looks at.
pub const DETECT_WINDOW: usize = 64 * 1024;

/// The feed formats this crate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// SWIFT MT940 and MT942.
    Mt940,
    /// ISO 20022 camt.052 / camt.053 / camt.054.
    Camt,
    /// NACHA ACH.
    Nacha,
    /// BAI2 cash management.
    Bai2,
    /// Delimited text described by a [`CsvProfile`].
    Csv,
}

impl Format {
    /// Recognises a format from the first bytes of a file (up to
    /// [`DETECT_WINDOW`]). Structured formats are tried before CSV because
    /// BAI2 is comma-separated too.
    pub fn detect(first_bytes: &[u8]) -> Option<Format> {
        let head = utf16_to_utf8(first_bytes);
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head);
        let trimmed = &head[head.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(head.len())..];
        if trimmed.starts_with(b"<") {
            return camt::sniff(trimmed).map(|_| Format::Camt);
        }
        if nacha::looks_like(trimmed) {
            Some(Format::Nacha)
        } else if bai2::looks_like(trimmed) {
            Some(Format::Bai2)
        } else if mt940::looks_like(trimmed) {
            Some(Format::Mt940)
        } else if csv_feed::looks_like(trimmed) {
            Some(Format::Csv)
        } else {
            None
        }
    }

    /// Lower-case name as used on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Mt940 => "mt940",
            Format::Camt => "camt",
            Format::Nacha => "nacha",
            Format::Bai2 => "bai2",
            Format::Csv => "csv",
        }
    }

    fn accepts(&self, head: &[u8]) -> bool {
        let head = utf16_to_utf8(head);
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head);
        let t = &head[head.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(head.len())..];
        match self {
            Format::Mt940 => mt940::looks_like(t),
            Format::Camt => t.starts_with(b"<") && camt::sniff(t).is_some(),
            Format::Nacha => nacha::looks_like(t),
            Format::Bai2 => bai2::looks_like(t),
            // A profile decides; the header check happens when opening.
            Format::Csv => true,
        }
    }
}

/// UTF-16 input is rare but legal for XML; detection works on UTF-8.
fn utf16_to_utf8(head: &[u8]) -> Vec<u8> {
    match encoding_rs::Encoding::for_bom(head) {
        Some((enc, bom)) if enc != encoding_rs::UTF_8 => {
            let (text, _) = enc.decode_without_bom_handling(&head[bom..]);
            text.into_owned().into_bytes()
        }
        _ => head.to_vec(),
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "mt940" | "mt942" | "swift" => Ok(Format::Mt940),
            "camt" | "camt052" | "camt053" | "camt054" | "iso20022" => Ok(Format::Camt),
            "nacha" | "ach" => Ok(Format::Nacha),
            "bai2" | "bai" => Ok(Format::Bai2),
            "csv" => Ok(Format::Csv),
            other => Err(format!("unknown feed format {other:?} (mt940, camt, nacha, bai2, csv)")),
        }
    }
}

type Items = Box<dyn Iterator<Item = Result<Item, FeedError>> + Send>;

/// A parsed feed: iterate it for items in file order. An `Err` item means
/// reading stopped (I/O failure); everything before it is valid.
pub struct Feed {
    format: Format,
    items: Items,
}

impl Feed {
    /// The format being read.
    pub fn format(&self) -> Format {
        self.format
    }
}

impl Iterator for Feed {
    type Item = Result<Item, FeedError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.items.next()
    }
}

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed").field("format", &self.format).finish_non_exhaustive()
    }
}

/// Hex SHA-256 of a file, read in bounded memory.
pub fn file_sha256(path: &Path) -> Result<String, FeedError> {
    let name = path.display().to_string();
    let mut file = File::open(path).map_err(|e| FeedError::io(&name, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(|e| FeedError::io(&name, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Opens a file: hashes it, detects or checks the format, and returns the
/// item stream. `format: None` means auto-detect.
pub fn open(path: &Path, format: Option<Format>, profile: Option<&CsvProfile>) -> Result<Feed, FeedError> {
    let name = path.display().to_string();
    let sha = file_sha256(path)?;
    let file = File::open(path).map_err(|e| FeedError::io(&name, e))?;
    parse(file, format, profile, SourceInfo { name, sha256: Some(sha) })
}

/// Parses any byte stream. `format: None` means auto-detect; a CSV stream
/// needs `profile`.
pub fn parse<R: Read + Send + 'static>(
    reader: R,
    format: Option<Format>,
    profile: Option<&CsvProfile>,
    source: SourceInfo,
) -> Result<Feed, FeedError> {
    let (head, replay) = peek(reader, DETECT_WINDOW).map_err(|e| FeedError::io(&source.name, e))?;
    let format = match format {
        Some(f) => {
            if !f.accepts(&head) {
                return Err(FeedError::not_format(&source.name, f.name(), not_format_reason(f)));
            }
            f
        }
        // With a profile at hand, text that is no other format (even a lone
        // header row) is tried as CSV; the header check then decides.
        None => Format::detect(&head)
            .or(profile.map(|_| Format::Csv))
            .ok_or_else(|| FeedError::UnknownFormat { source_name: source.name.clone() })?,
    };
    let items: Items = match format {
        Format::Mt940 => Box::new(Mt940Reader::new(bom_aware(replay), source)),
        Format::Bai2 => Box::new(Bai2Reader::new(bom_aware(replay), source)),
        Format::Nacha => Box::new(NachaReader::new(bom_aware(replay), source)),
        Format::Camt => {
            let version = camt::sniff(&utf16_to_utf8(&head)).unwrap_or(camt::CamtVersion { message: 53, version: 0 });
            match camt::declared_encoding(&head) {
                Some(enc) if enc != encoding_rs::UTF_8 && encoding_rs::Encoding::for_bom(&head).is_none() => {
                    Box::new(CamtReader::new(transcoding(replay, enc), version, source))
                }
                _ => Box::new(CamtReader::new(bom_aware(replay), version, source)),
            }
        }
        Format::Csv => {
            let profile = profile.ok_or_else(|| FeedError::ProfileRequired { source_name: source.name.clone() })?;
            let enc = profile.encoding().unwrap_or(encoding_rs::UTF_8);
            if enc == encoding_rs::UTF_8 {
                Box::new(CsvReader::new(BufReader::new(bom_aware(replay)), profile, source)?)
            } else {
                Box::new(CsvReader::new(transcoding(replay, enc), profile, source)?)
            }
        }
    };
    Ok(Feed { format, items })
}

fn not_format_reason(f: Format) -> &'static str {
    match f {
        Format::Mt940 => "no :20: field followed by statement fields",
        Format::Camt => "no camt.052/053/054 document element",
        Format::Nacha => "no 94-character file header record (101...094)",
        Format::Bai2 => "no 01 file header record",
        Format::Csv => "not delimited text",
    }
}

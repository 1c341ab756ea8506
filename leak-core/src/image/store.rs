//! Blob stores behind an image input: a directory, an uncompressed tar read
//! by offset, or a compressed tar read as a stream.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::codec::{Codec, MultiGzDecoder, peek_codec};
use crate::layer::display_path;

/// Largest metadata file (manifest, index, config) read into memory.
pub(crate) const MAX_METADATA_BYTES: u64 = 16 << 20;

/// Total bytes a compressed archive's first pass keeps in memory.
const MAX_KEPT_BYTES: u64 = 256 << 20;

/// Storage of an image input's blobs.
#[derive(Debug)]
pub(crate) enum Store {
    /// A directory (an OCI layout).
    Directory(PathBuf),
    /// An uncompressed tar: members are read by offset, several at once.
    Tar {
        path: PathBuf,
        members: HashMap<String, (u64, u64)>,
    },
    /// A gzip or zstd compressed tar: small members are kept from a first
    /// pass, large ones are scanned during a second, sequential pass.
    Stream {
        path: PathBuf,
        kept: HashMap<String, Vec<u8>>,
        aliases: HashMap<String, String>,
    },
}

impl Store {
    /// Opens `path` as a directory, a tar, or a compressed tar.
    pub(crate) fn open(path: &Path) -> io::Result<Store> {
        if path.is_dir() {
            return Ok(Store::Directory(path.to_owned()));
        }
        let (codec, _) = peek_codec(File::open(path)?)?;
        match codec {
            Codec::Tar | Codec::Empty => index_tar(path),
            Codec::Gzip | Codec::Zstd => first_pass(path, codec),
            Codec::Unknown => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not a directory, a tar, or a gzip or zstd compressed tar",
                    path.display()
                ),
            )),
        }
    }

    /// Reports whether blobs can be opened independently (and so scanned in
    /// parallel).
    pub(crate) fn random_access(&self) -> bool {
        !matches!(self, Store::Stream { .. })
    }

    /// Returns the member name that `name` finally refers to: the target of
    /// a symlink or hardlink in a compressed tar, else `name` itself.
    pub(crate) fn resolve(&self, name: &str) -> String {
        let name = display_path(name);
        match self {
            Store::Stream { aliases, .. } => aliases.get(&name).cloned().unwrap_or(name),
            _ => name,
        }
    }

    /// Checks whether a member exists.
    pub(crate) fn contains(&self, name: &str) -> bool {
        let name = display_path(name);
        match self {
            Store::Directory(root) => directory_member(root, &name).is_ok(),
            Store::Tar { members, .. } => members.contains_key(&name),
            Store::Stream { kept, aliases, .. } => {
                kept.contains_key(&name) || aliases.contains_key(&name)
            }
        }
    }

    /// Reads a small member (a manifest, index or config) whole.
    pub(crate) fn read_small(&self, name: &str) -> io::Result<Vec<u8>> {
        let name = display_path(name);
        if let Store::Stream { kept, aliases, .. } = self {
            let real = aliases.get(&name).unwrap_or(&name);
            return kept.get(real).cloned().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("member {name} not found, or larger than {MAX_METADATA_BYTES} bytes"),
                )
            });
        }
        let mut reader = self.open_blob(&name)?;
        let mut bytes = Vec::new();
        (&mut reader)
            .take(MAX_METADATA_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_METADATA_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "member {name} is larger than {MAX_METADATA_BYTES} bytes, too large for metadata"
                ),
            ));
        }
        Ok(bytes)
    }

    /// Opens a member for streaming. Compressed tars have no random access:
    /// only members kept by the first pass open here.
    pub(crate) fn open_blob(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        let name = display_path(name);
        match self {
            Store::Directory(root) => {
                let path = directory_member(root, &name)?;
                Ok(Box::new(BufReader::with_capacity(
                    256 << 10,
                    File::open(path)?,
                )))
            }
            Store::Tar { path, members } => {
                let &(offset, size) = members.get(&name).ok_or_else(|| not_found(&name))?;
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(offset))?;
                Ok(Box::new(BufReader::with_capacity(
                    256 << 10,
                    file.take(size),
                )))
            }
            Store::Stream { kept, aliases, .. } => {
                let real = aliases.get(&name).unwrap_or(&name);
                let bytes = kept.get(real).ok_or_else(|| not_found(&name))?.clone();
                Ok(Box::new(io::Cursor::new(bytes)))
            }
        }
    }

    /// Streams every member of a compressed tar once, in archive order,
    /// calling `visit` for each member in `wanted` that the first pass did
    /// not keep. Aliases (symlinks and hardlinks) are resolved.
    pub(crate) fn stream_members(
        &self,
        wanted: &[String],
        visit: &mut dyn FnMut(&str, &mut dyn Read),
    ) -> io::Result<()> {
        let Store::Stream {
            path,
            kept,
            aliases,
        } = self
        else {
            return Ok(());
        };
        let resolve = |name: &String| aliases.get(name).cloned().unwrap_or_else(|| name.clone());
        let pending: Vec<String> = wanted
            .iter()
            .map(resolve)
            .filter(|name| !kept.contains_key(name))
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let mut archive = tar::Archive::new(decompressed(path)?);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let name = display_path(&String::from_utf8_lossy(&entry.path_bytes()));
            if pending.contains(&name) {
                visit(&name, &mut entry);
            }
        }
        Ok(())
    }
}

/// Returns the path of member `name` under `root`. Names come from the
/// input's own JSON, so a `..` component is rejected (it would read files
/// outside the input), and so is anything but a regular file after
/// following symlinks (a FIFO or `/dev/zero` would block or never end).
fn directory_member(root: &Path, name: &str) -> io::Result<PathBuf> {
    if name.split('/').any(|component| component == "..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("member {name:?} leaves the input directory"),
        ));
    }
    let path = root.join(name);
    if !std::fs::metadata(&path)?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("member {name:?} is not a regular file"),
        ));
    }
    Ok(path)
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("member {name} not found in the archive"),
    )
}

fn decompressed(path: &Path) -> io::Result<Box<dyn Read>> {
    let (codec, stream) = peek_codec(File::open(path)?)?;
    Ok(match codec {
        Codec::Gzip => Box::new(MultiGzDecoder::new(BufReader::with_capacity(
            256 << 10,
            stream,
        ))),
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(stream)?),
        _ => Box::new(BufReader::new(stream)),
    })
}

/// Resolves a link target written in a tar relative to the member's
/// directory or to the archive root.
fn link_target(member: &str, target: &str, hard: bool) -> String {
    if hard || target.starts_with('/') {
        return crate::layer::normalize_path(target);
    }
    let parent = member.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
    crate::layer::normalize_path(&format!("{parent}/{target}"))
}

/// Returns the member name and resolved target of a symlink or hardlink
/// entry, or `None` when the entry names no target.
fn link_of<R: Read>(entry: &tar::Entry<'_, R>, name: &str) -> Option<(String, String)> {
    let target = entry.link_name_bytes()?;
    let hard = entry.header().entry_type().is_hard_link();
    let target = link_target(name, &String::from_utf8_lossy(&target), hard);
    Some((name.to_owned(), target))
}

fn index_tar(path: &Path) -> io::Result<Store> {
    let mut archive = tar::Archive::new(BufReader::new(File::open(path)?));
    let mut members = HashMap::new();
    let mut links = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let name = display_path(&String::from_utf8_lossy(&entry.path_bytes()));
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            links.extend(link_of(&entry, &name));
            continue;
        }
        if kind.is_file() || kind == tar::EntryType::Continuous {
            members.insert(name, (entry.raw_file_position(), entry.size()));
        }
    }
    resolve_links(&mut members, links);
    Ok(Store::Tar {
        path: path.to_owned(),
        members,
    })
}

fn resolve_links<V: Clone>(members: &mut HashMap<String, V>, links: Vec<(String, String)>) {
    // Links may point at links; a few rounds settle any sane chain.
    for _ in 0..8 {
        let mut changed = false;
        for (name, target) in &links {
            if members.contains_key(name) {
                continue;
            }
            if let Some(value) = members.get(target).cloned() {
                members.insert(name.clone(), value);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

fn first_pass(path: &Path, _codec: Codec) -> io::Result<Store> {
    let mut archive = tar::Archive::new(decompressed(path)?);
    let mut kept = HashMap::new();
    let mut links = Vec::new();
    let mut kept_bytes = 0u64;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = display_path(&String::from_utf8_lossy(&entry.path_bytes()));
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            links.extend(link_of(&entry, &name));
            continue;
        }
        let size = entry.size();
        if kind.is_file() && size <= MAX_METADATA_BYTES && kept_bytes + size <= MAX_KEPT_BYTES {
            let mut bytes = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut bytes)?;
            kept_bytes += size;
            kept.insert(name, bytes);
        }
    }
    let mut aliases = HashMap::new();
    for (name, target) in links {
        aliases.insert(name, target);
    }
    // Collapse alias chains to their final member.
    let snapshot = aliases.clone();
    for target in aliases.values_mut() {
        for _ in 0..8 {
            match snapshot.get(target.as_str()) {
                Some(next) => *target = next.clone(),
                None => break,
            }
        }
    }
    Ok(Store::Stream {
        path: path.to_owned(),
        kept,
        aliases,
    })
}

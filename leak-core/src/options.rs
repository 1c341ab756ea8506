//! Bounds and tuning for a scan.

/// Bounds and tuning knobs. The defaults suit images of any size; every
/// bound that trips is reported as a coverage gap, never skipped silently.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Bytes scanned per chunk of a file. Memory per scanning thread is
    /// about `chunk_size + overlap`.
    pub chunk_size: usize,
    /// Bytes each chunk shares with the one before it; raised to the
    /// longest possible match. A match up to this long that crosses a chunk
    /// edge is found.
    pub overlap: usize,
    /// Largest nested archive (`.tar`, `.tgz`, `.zip`, `.jar`, ...) that is
    /// opened, in bytes. Its compressed bytes are held in memory while it is
    /// scanned. Larger ones are still scanned as raw bytes.
    pub nested_max_bytes: u64,
    /// Maximum nesting depth of archives inside archives.
    pub nested_max_depth: usize,
    /// Maximum uncompressed bytes read from the members of one nested
    /// archive, a guard against decompression bombs.
    pub nested_max_expanded_bytes: u64,
    /// Number of layers scanned at once. 0 means the number of CPUs.
    pub parallel_layers: usize,
    /// Size of the blocks handed from the decompressing thread to the
    /// matching thread, in bytes.
    pub pipeline_block_size: usize,
    /// Number of blocks in flight between the two threads.
    pub pipeline_depth: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            chunk_size: 1 << 20,
            overlap: 16 << 10,
            nested_max_bytes: 64 << 20,
            nested_max_depth: 3,
            nested_max_expanded_bytes: 1 << 30,
            parallel_layers: 0,
            pipeline_block_size: 256 << 10,
            pipeline_depth: 8,
        }
    }
}

//! Layer scanning throughput against inflating alone, and peak memory.
//!
//! ```text
//! cargo bench -p leak-benches --bench layer_throughput
//! LEAK_BENCH_GIB=4 cargo bench -p leak-benches --bench layer_throughput
//! ```
//!
//! Builds one gzip layer (default 2 GiB uncompressed: one large file of
//! mixed text, base64 and binary, plus a few small files with planted
//! fake secrets) in a temporary directory. In one run it then inflates
//! the layer with flate2 (zlib-rs backend) into a sink three times, scans
//! it with `Scanner::scan_layer` three times in a child process that
//! reports its peak RSS (`VmHWM`), and prints the best time of each and
//! their ratio. Ratios from one run
//! are what to compare: these machines are noisy.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use leak_core::{LayerInfo, Scanner};

const RUNS: usize = 3;

/// Deterministic xorshift generator, so every run scans the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Streams `size` bytes of file content: mostly log and config text with
/// words that trigger rule keywords (password, token, key), some base64,
/// and some binary, roughly what a large image file holds.
fn write_content(out: &mut dyn Write, size: u64) -> io::Result<()> {
    let words = [
        "server", "request", "handled", "user", "password", "token", "session", "key", "id",
        "config", "value", "error", "retry", "upstream", "secret", "cache", "miss", "the", "of",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut written = 0u64;
    let mut block = Vec::with_capacity(1 << 20);
    while written < size {
        block.clear();
        while block.len() < (1 << 20) - 256 {
            match rng.next() % 10 {
                0 => {
                    for _ in 0..32 {
                        block.push((rng.next() & 0xff) as u8);
                    }
                }
                1 => {
                    const B64: &[u8] =
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                    for _ in 0..76 {
                        block.push(B64[(rng.next() % 64) as usize]);
                    }
                    block.push(b'\n');
                }
                _ => {
                    for _ in 0..(4 + rng.next() % 8) {
                        block.extend_from_slice(
                            words[(rng.next() % words.len() as u64) as usize].as_bytes(),
                        );
                        block.push(if rng.next().is_multiple_of(7) {
                            b'='
                        } else {
                            b' '
                        });
                    }
                    block.extend_from_slice(format!("{}\n", rng.next() % 100_000).as_bytes());
                }
            }
        }
        let take = block.len().min((size - written) as usize);
        out.write_all(&block[..take])?;
        written += take as u64;
    }
    Ok(())
}

fn build_layer(path: &Path, size: u64) -> io::Result<()> {
    let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::fast()));
    let secrets = [
        (
            "app/.env",
            "AWS_ACCESS_KEY_ID=AKIAZ7QBENCH4LEAK3Y5\nAWS_SECRET_ACCESS_KEY=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\n",
        ),
        (
            "app/config.yml",
            "db:\n  password: Ur5wQ9zK2mXb7TnL4vHs8dPe\n",
        ),
    ];
    for (name, text) in secrets {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, text.as_bytes())?;
    }
    // The large file is streamed through a pipe thread into the tar.
    let (mut reader, writer) = io::pipe()?;
    let producer = std::thread::spawn(move || {
        let mut writer = BufWriter::with_capacity(1 << 20, writer);
        write_content(&mut writer, size).and_then(|()| writer.flush())
    });
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, "var/lib/data/big.log", &mut reader)?;
    producer.join().expect("content thread")?;
    builder.into_inner()?.finish()?.flush()
}

/// Builds a layer from the regular files under `root` (this machine's
/// `/usr` by default: binaries, libraries, scripts and documentation, as in
/// a distribution base layer), stopping at `budget` bytes of content.
/// Symlinks and unreadable files are left out.
fn build_real_layer(path: &Path, root: &Path, budget: u64) -> io::Result<u64> {
    let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::fast()));
    builder.follow_symlinks(false);
    let mut total = 0u64;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let entry_path = entry.path();
            if kind.is_dir() {
                stack.push(entry_path);
            } else if kind.is_file() && total < budget {
                let Ok(mut source) = File::open(&entry_path) else {
                    continue;
                };
                let name = entry_path.strip_prefix("/").unwrap_or(&entry_path);
                if builder.append_file(name, &mut source).is_ok() {
                    total += entry.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
        }
    }
    builder.into_inner()?.finish()?.flush()?;
    Ok(total)
}

fn inflate_once(path: &Path) -> io::Result<Duration> {
    let start = Instant::now();
    let mut decoder = MultiGzDecoder::new(BufReader::with_capacity(128 << 10, File::open(path)?));
    io::copy(&mut decoder, &mut io::sink())?;
    Ok(start.elapsed())
}

/// Child process: scans the layer RUNS times, prints the best seconds, the
/// finding count and the peak RSS in KiB.
fn scan_child(path: &Path) -> io::Result<()> {
    let builtin = std::env::var_os("LEAK_BENCH_NO_RULES").is_none();
    let scanner = Scanner::builder()
        .builtin_rules(builtin)
        .build()
        .map_err(io::Error::other)?;
    let mut best = Duration::MAX;
    let mut findings = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut file = File::open(path)?;
        let report = scanner.scan_layer(&mut file, &LayerInfo::default());
        best = best.min(start.elapsed());
        findings = report.findings.len();
        if std::env::var_os("LEAK_BENCH_SHOW").is_some() {
            for finding in report.findings.iter().take(10) {
                eprintln!(
                    "{} {} {} line {:?}",
                    finding.rule, finding.redacted, finding.path, finding.line
                );
            }
        }
        assert!(
            report.complete,
            "benchmark layer scanned incompletely: {:?}",
            report.gaps
        );
    }
    let status = std::fs::read_to_string("/proc/self/status")?;
    let peak = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .map(|v| v.trim().trim_end_matches(" kB").trim().to_owned())
        .unwrap_or_default();
    println!("{} {findings} {peak}", best.as_secs_f64());
    Ok(())
}

fn measure(label: &str, layer: &Path, size: u64) -> io::Result<()> {
    let compressed = std::fs::metadata(layer)?.len();
    let mut inflate_best = Duration::MAX;
    for _ in 0..RUNS {
        inflate_best = inflate_best.min(inflate_once(layer)?);
    }
    let output = Command::new(std::env::current_exe()?)
        .arg("--scan-child")
        .arg(layer)
        .output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "scan child failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text.split_whitespace();
    let scan_seconds: f64 = fields
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let findings = fields.next().unwrap_or("?").to_owned();
    let peak_kib: f64 = fields
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);

    let inflate_seconds = inflate_best.as_secs_f64();
    let mib = size as f64 / f64::from(1u32 << 20);
    println!("== {label}");
    println!(
        "layer: {mib:.0} MiB of file content, {:.0} MiB gzip",
        compressed as f64 / f64::from(1u32 << 20)
    );
    println!(
        "inflate alone: {inflate_seconds:.2} s ({:.0} MiB/s), best of {RUNS}",
        mib / inflate_seconds
    );
    println!(
        "scan_layer:    {scan_seconds:.2} s ({:.0} MiB/s), best of {RUNS}, {findings} findings",
        mib / scan_seconds
    );
    println!(
        "ratio scan / inflate: {:.3}",
        scan_seconds / inflate_seconds
    );
    println!("scan peak RSS: {:.1} MiB", peak_kib / 1024.0);
    Ok(())
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|a| a == "--scan-child") {
        return scan_child(Path::new(&args[position + 1]));
    }
    let gib: f64 = std::env::var("LEAK_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let real_gib: f64 = std::env::var("LEAK_BENCH_REAL_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let real_root = std::env::var("LEAK_BENCH_REAL_ROOT").unwrap_or_else(|_| "/usr".to_owned());
    let dir = tempfile::tempdir()?;

    let real = dir.path().join("real.tar.gz");
    eprintln!("building a layer of up to {real_gib} GiB of files under {real_root}");
    let real_size = build_real_layer(
        &real,
        Path::new(&real_root),
        (real_gib * f64::from(1u32 << 30)) as u64,
    )?;
    measure(&format!("files under {real_root}"), &real, real_size)?;
    std::fs::remove_file(&real)?;

    let size = (gib * f64::from(1u32 << 30)) as u64;
    let layer = dir.path().join("layer.tar.gz");
    eprintln!("building a {gib} GiB layer with one generated file");
    build_layer(&layer, size)?;
    measure(
        "one generated keyword-dense file (worst case)",
        &layer,
        size,
    )?;
    Ok(())
}

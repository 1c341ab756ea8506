//! Writes the bundled demo image, `examples/demo/demo-image.tar`.
//!
//! ```text
//! cargo run --example make_demo
//! ```
//!
//! The image is a docker-archive (the `docker save` format) of a small web
//! app built in four layers, with fake credentials planted where real ones
//! leak: a config file, an AWS credentials file deleted by a later layer,
//! a properties file inside a jar, an `ENV` line and a build argument.
//! Every value is made up for this demo and grants nothing anywhere. The
//! output is byte-for-byte reproducible: entries carry mtime 0 and fixed
//! owners.

use std::io::{Cursor, Write};
use std::path::PathBuf;

use serde_json::json;
use sha2::{Digest, Sha256};

/// Fake values, shaped like real credentials.
const FAKE_AWS_KEY_ID: &str = "AKIAZ7QDEMO4LEAKK3Y5";
const FAKE_AWS_SECRET: &str = "q8Vd2Lx0Rk7sTnW5yHcE3mJ9bF1gZ6uA4pNoXi+D";
const FAKE_DB_PASSWORD: &str = "Tq7vLm2xRz9KdW4sBn8c";
const FAKE_GITHUB_TOKEN: &str = "ghp_Dm0Fq8Lz3Xv6Rk1Tn9Ws4Yb7Hc2Jp5Ug0eAi";
const FAKE_NPM_TOKEN: &str = "npm_Zx4Kq9Wm2Lr7Tv5Bn8Hs3Jd6Fp1Gc0YeQuAo";
const FAKE_CONFIG_PASSWORD: &str = "Ur5wQ9zK2mXb7TnL4vHs8dPe";

fn layer(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data, mode) in entries {
        let mut header = tar::Header::new_gnu();
        if path.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(data.len() as u64);
        }
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        builder
            .append_data(&mut header, path, *data)
            .expect("append to an in-memory tar");
    }
    builder.into_inner().expect("finish an in-memory tar")
}

fn jar_with_properties() -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    writer
        .start_file("META-INF/MANIFEST.MF", options)
        .expect("start jar member");
    writer
        .write_all(b"Manifest-Version: 1.0\n")
        .expect("write jar member");
    writer
        .start_file("application.properties", options)
        .expect("start jar member");
    let properties = format!("server.port=8080\ngithub.token={FAKE_GITHUB_TOKEN}\n");
    writer
        .write_all(properties.as_bytes())
        .expect("write jar member");
    writer.finish().expect("finish jar").into_inner()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn main() {
    let credentials = format!(
        "[default]\naws_access_key_id = {FAKE_AWS_KEY_ID}\naws_secret_access_key = {FAKE_AWS_SECRET}\nregion = eu-west-1\n"
    );
    let config_yml = format!(
        "server:\n  port: 8080\ndatabase:\n  user: app\n  password: {FAKE_CONFIG_PASSWORD}\n"
    );
    let jar = jar_with_properties();
    let layers = [
        layer(&[
            ("etc/", b"", 0o755),
            (
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n",
                0o644,
            ),
            ("etc/os-release", b"NAME=\"Demo Linux\"\nID=demo\n", 0o644),
            ("app/", b"", 0o755),
        ]),
        layer(&[
            ("root/", b"", 0o700),
            ("root/.aws/", b"", 0o700),
            ("root/.aws/credentials", credentials.as_bytes(), 0o600),
            ("app/config.yml", config_yml.as_bytes(), 0o644),
        ]),
        layer(&[
            ("root/.aws/", b"", 0o700),
            ("root/.aws/.wh.credentials", b"", 0o000),
        ]),
        layer(&[
            ("app/lib/", b"", 0o755),
            ("app/lib/service.jar", &jar, 0o644),
        ]),
    ];
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    let database_url = format!("postgres://app:{FAKE_DB_PASSWORD}@db.internal:5432/shop");
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", format!("DATABASE_URL={database_url}")],
            "Cmd": ["/app/start.sh"],
            "Labels": {"org.opencontainers.image.title": "demo-shop"}
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created_by": "/bin/sh -c #(nop) ADD rootfs.tar /"},
            {"created_by": "/bin/sh -c #(nop) COPY credentials config.yml", "comment": "copied the developer's AWS profile by mistake"},
            {"created_by": "/bin/sh -c rm /root/.aws/credentials"},
            {"created_by": format!("|1 NPM_TOKEN={FAKE_NPM_TOKEN} /bin/sh -c npm ci && cp target/service.jar /app/lib/")},
            {"created_by": format!("/bin/sh -c #(nop) ENV DATABASE_URL={database_url}"), "empty_layer": true},
            {"created_by": "/bin/sh -c #(nop) CMD [\"/app/start.sh\"]", "empty_layer": true}
        ]
    });
    let config_bytes = serde_json::to_vec(&config).expect("serialise config");
    let config_name = format!("{}.json", sha256_hex(&config_bytes));
    let layer_names: Vec<String> = diff_ids
        .iter()
        .map(|id| format!("{}.tar", id.trim_start_matches("sha256:")))
        .collect();
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": ["demo/shop:1.0"],
        "Layers": layer_names,
    }]);

    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        archive
            .append_data(&mut header, name, data)
            .expect("append to the archive");
    };
    for (name, data) in layer_names.iter().zip(&layers) {
        add(name, data);
    }
    add(&config_name, &config_bytes);
    add(
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("serialise manifest"),
    );
    let bytes = archive.into_inner().expect("finish the archive");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("demo/demo-image.tar");
    std::fs::write(&path, bytes).expect("write the demo image");
    println!("wrote {}", path.display());
}

//! Starts a real `docker-registry` (distribution 2.8) on a free 127.0.0.1
//! port with in-memory storage and deletion enabled.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leak_registry::RegistryClient;

const CONFIG: &str = "version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  inmemory: {}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
  secret: leak-remediate-test-http-secret
";

/// A `docker-registry` process, killed on drop.
pub struct Registry {
    pub address: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds the registry binary, or fails the test with an install hint.
pub fn registry_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("LEAK_DOCKER_REGISTRY") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|directory| directory.join("docker-registry"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "docker-registry not found: install it with `apt-get install -y docker-registry` \
             (distribution 2.8) or set LEAK_DOCKER_REGISTRY to the binary"
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    pub async fn start() -> Registry {
        let binary = registry_binary();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(&config, CONFIG).unwrap();
        let log = dir.path().join("registry.log");
        let address = format!("127.0.0.1:{}", free_port());
        let child = Command::new(&binary)
            .arg("serve")
            .arg(&config)
            .env("REGISTRY_HTTP_ADDR", &address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        let mut registry = Registry {
            address,
            child,
            _dir: dir,
        };
        registry.wait_ready(&log).await;
        registry
    }

    async fn wait_ready(&mut self, log: &std::path::Path) {
        let url = format!("http://{}/v2/", self.address);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!("docker-registry exited with {status} before answering:\n{log}");
            }
            if let Ok(response) = http.get(&url).send().await
                && response.status().as_u16() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "docker-registry on {} did not answer within 20 s",
            self.address
        );
    }

    pub fn client(&self) -> RegistryClient {
        RegistryClient::builder(self.address.clone())
            .with_insecure(true)
            .build()
            .unwrap()
    }
}

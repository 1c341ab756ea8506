//! A hostile registry: bodies that never end and listings that page
//! forever. Distribution 2.8 always sends bounded bodies and finite
//! listings, so these cases need a loopback server that misbehaves on cue.
//! This one speaks just enough HTTP/1.1 (chunked bodies) to do that.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use leak_registry::{Error, RegistryClient, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes the server writes at most for one endless body, so a client that
/// never stops reading still ends the test.
const ENDLESS_BODY_CAP: usize = 96 << 20;

/// What never ends in the server's responses.
#[derive(Clone, Copy)]
enum Endless {
    /// A chunked JSON body that never closes its array.
    Body,
    /// A one-entry catalog page whose `Link` always names a new cursor.
    Pages,
    /// A bearer challenge whose realm, on the same server, returns an endless
    /// body.
    Token,
}

struct Hostile {
    address: String,
    requests: Arc<AtomicUsize>,
}

async fn start(script: Endless) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let own = address.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let number = counter.fetch_add(1, Ordering::SeqCst);
            let own = own.clone();
            tokio::spawn(async move {
                let _ = serve(stream, script, number, &own).await;
            });
        }
    });
    Hostile { address, requests }
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

async fn serve(
    mut stream: TcpStream,
    script: Endless,
    number: usize,
    own: &str,
) -> std::io::Result<()> {
    let head = read_head(&mut stream).await?;
    if let Endless::Token = script {
        if head.starts_with("GET /token") {
            return endless_body(&mut stream).await;
        }
        let challenge = format!(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://{own}/token\",service=\"hostile\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return stream.write_all(challenge.as_bytes()).await;
    }
    if head.starts_with("GET /v2/ ") {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        return stream.write_all(ok.as_bytes()).await;
    }
    match script {
        Endless::Body => endless_body(&mut stream).await,
        Endless::Token => Ok(()),
        Endless::Pages => {
            let body = format!(r#"{{"repositories":["repo{number}"]}}"#);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLink: </v2/_catalog?n=1&last=repo{number}>; rel=\"next\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).await
        }
    }
}

async fn endless_body(stream: &mut TcpStream) -> std::io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await?;
    let filler = vec![b' '; 64 << 10];
    let chunk = format!("{:x}\r\n", filler.len());
    let mut sent = 0;
    stream.write_all(b"1\r\n[\r\n").await?;
    while sent < ENDLESS_BODY_CAP {
        stream.write_all(chunk.as_bytes()).await?;
        stream.write_all(&filler).await?;
        stream.write_all(b"\r\n").await?;
        sent += filler.len();
    }
    stream.write_all(b"0\r\n\r\n").await
}

fn client(server: &Hostile) -> RegistryClient {
    RegistryClient::builder(server.address.clone())
        .with_insecure(true)
        .with_page_size(1)
        .with_retry(RetryPolicy::new().with_base_delay(Duration::from_millis(10)))
        .build()
        .unwrap()
}

#[tokio::test]
async fn endless_manifest_body_bounded() {
    let server = start(Endless::Body).await;
    let client = client(&server);

    let error = client.manifest("app", "1.0").await.unwrap_err();

    assert!(matches!(error, Error::InvalidManifest { .. }), "{error}");
    let received = client.stats().bytes;
    assert!(
        received <= 5 << 20,
        "the client read {received} bytes of a manifest limited to 4 MiB"
    );
}

#[tokio::test]
async fn endless_catalog_page_bounded() {
    let server = start(Endless::Body).await;
    let client = client(&server);

    let error = client.catalog().await.unwrap_err();

    assert!(matches!(error, Error::ResponseTooLarge { .. }), "{error}");
    let received = client.stats().bytes;
    assert!(
        received < ENDLESS_BODY_CAP as u64,
        "the client read the whole {received}-byte page"
    );
}

#[tokio::test]
async fn endless_catalog_paging_bounded() {
    let server = start(Endless::Pages).await;
    let client = RegistryClient::builder(server.address.clone())
        .with_insecure(true)
        .with_page_size(1)
        .with_max_pages(50)
        .build()
        .unwrap();

    let listing = tokio::time::timeout(Duration::from_secs(120), client.catalog()).await;

    let error = listing
        .expect("the listing ended within two minutes")
        .unwrap_err();
    assert!(matches!(error, Error::InvalidLink { .. }), "{error}");
    let requests = server.requests.load(Ordering::SeqCst);
    assert!(
        requests <= 51,
        "{requests} pages requested past a limit of 50"
    );
}

#[tokio::test]
async fn endless_token_body_bounded() {
    let server = start(Endless::Token).await;
    let client = client(&server);

    let error = client.ping().await.unwrap_err();

    assert!(matches!(error, Error::TokenRequest { .. }), "{error}");
    assert!(error.to_string().contains("larger than"), "{error}");
}

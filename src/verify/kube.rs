//! The little of the Kubernetes API that `statelab verify` needs, on the HTTP client the rest of
//! statelab already uses (reqwest + rustls): the kubeconfig (or the pod's service account),
//! get/list/create/patch/delete of the objects in `objects.rs`, raw requests for the API
//! server's proxy and pod logs, and `exec` over a WebSocket (`v4.channel.k8s.io`).

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::objects::Kind;

/// A connection to one cluster's API server, with the credentials of the kubeconfig's user.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
    pub default_namespace: String,
}

/// An answer of the API server other than 2xx, with its own message (`pods "x" not found`).
#[derive(Debug, thiserror::Error)]
#[error("{message} ({status})")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn is_not_found(error: &anyhow::Error) -> bool {
        error
            .downcast_ref::<ApiError>()
            .is_some_and(|e| e.status == 404)
    }
}

impl Client {
    /// KUBECONFIG (a `:`-separated list, merged as kubectl merges it: the first file to name a
    /// thing wins) or ~/.kube/config; inside a pod without either, its service account.
    pub fn from_environment() -> Result<Self> {
        let paths: Vec<PathBuf> = match std::env::var_os("KUBECONFIG") {
            Some(list) if !list.is_empty() => std::env::split_paths(&list).collect(),
            _ => std::env::var_os("HOME")
                .map(|home| vec![Path::new(&home).join(".kube/config")])
                .unwrap_or_default(),
        };
        let existing: Vec<&PathBuf> = paths.iter().filter(|p| p.exists()).collect();
        if existing.is_empty() {
            if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
                return Self::in_cluster();
            }
            bail!("no kubeconfig at {}", display_paths(&paths));
        }
        let mut config = Kubeconfig::default();
        for path in existing {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let file: Kubeconfig = serde_norway::from_str(&text)
                .with_context(|| format!("{} is not a kubeconfig", path.display()))?;
            config.merge(file, path.parent().unwrap_or(Path::new(".")));
        }
        config.client()
    }

    /// The service account Kubernetes mounts into every pod.
    fn in_cluster() -> Result<Self> {
        const DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
        let host = std::env::var("KUBERNETES_SERVICE_HOST")?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let read = |file: &str| {
            std::fs::read(format!("{DIR}/{file}"))
                .with_context(|| format!("in a pod, but cannot read {DIR}/{file}"))
        };
        let token = String::from_utf8(read("token")?)?.trim().to_string();
        let namespace = String::from_utf8(read("namespace")?)?.trim().to_string();
        let http = http_builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&read("ca.crt")?)?)
            .build()?;
        Ok(Self {
            http,
            server: format!("https://{host}:{port}"),
            token: Some(token),
            default_namespace: namespace,
        })
    }

    /// The objects of one kind in a namespace (ignored for cluster-wide kinds).
    pub fn api<K: Kind>(&self, namespace: &str) -> Api<K> {
        let base = if K::NAMESPACED {
            format!("/{}/namespaces/{namespace}/{}", K::API, K::PLURAL)
        } else {
            format!("/{}/{}", K::API, K::PLURAL)
        };
        Api {
            client: self.clone(),
            base,
            kind: PhantomData,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.server));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// A request to any path of the API server; the answer whatever its status.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        json: Option<&Value>,
    ) -> Result<reqwest::Response> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut request = self.request(method, path);
        if let Some(body) = json {
            request = request.json(body);
        }
        Ok(request.send().await?)
    }

    /// The API server's version, as `GET /version` answers it.
    pub async fn version(&self) -> Result<Value> {
        decode(self.send("GET", "/version", None).await?).await
    }

    /// Runs `command` in a pod's container as `kubectl exec` does; stdout, stderr and whether it
    /// exited 0.
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: &[&str],
    ) -> Result<(Vec<u8>, Vec<u8>, bool)> {
        let mut query: Vec<(&str, &str)> = vec![("stdout", "true"), ("stderr", "true")];
        query.extend(command.iter().map(|arg| ("command", *arg)));
        if let Some(container) = container {
            query.push(("container", container));
        }
        let key: [u8; 16] = rand::random();
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/api/v1/namespaces/{namespace}/pods/{pod}/exec"),
            )
            .query(&query)
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header(
                "sec-websocket-key",
                base64::engine::general_purpose::STANDARD.encode(key),
            )
            .header("sec-websocket-protocol", CHANNEL_PROTOCOL)
            .send()
            .await?;
        if response.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
            return Err(api_error(response).await.into());
        }
        let stream = response.upgrade().await?;
        exec_channels(stream).await
    }
}

/// An API server that accepts connections but never answers must not hang a check: every
/// read waits at most longer than the longest exec (60 s).
fn http_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .read_timeout(std::time::Duration::from_secs(90))
}

/// kubectl's exec protocol: every binary message starts with its channel (1 stdout, 2 stderr,
/// 3 the command's final status as a v1.Status).
const CHANNEL_PROTOCOL: &str = "v4.channel.k8s.io";

async fn exec_channels<S>(mut stream: S) -> Result<(Vec<u8>, Vec<u8>, bool)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), None::<Value>);
    let mut message = Vec::new();
    loop {
        let Some(frame) = read_frame(&mut stream).await? else {
            break;
        };
        match frame.opcode {
            // Text, binary, or the continuation of either: a message ends with the FIN bit.
            0..=2 => {
                message.extend_from_slice(&frame.payload);
                if !frame.fin {
                    continue;
                }
                let (channel, data) = message.split_first().unwrap_or((&0, &[]));
                match channel {
                    1 => stdout.extend_from_slice(data),
                    2 => stderr.extend_from_slice(data),
                    3 => status = serde_json::from_slice(data).ok(),
                    _ => {}
                }
                message.clear();
            }
            CLOSE => {
                let _ = write_frame(&mut stream, CLOSE, &frame.payload).await;
                break;
            }
            PING => write_frame(&mut stream, PONG, &frame.payload).await?,
            _ => {}
        }
    }
    let status = status.context("the exec stream ended without the command's status")?;
    let success = status["status"] == "Success";
    Ok((stdout, stderr, success))
}

const CLOSE: u8 = 8;
const PING: u8 = 9;
const PONG: u8 = 10;

struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// One WebSocket frame (RFC 6455 §5.2); None at the end of the stream.
async fn read_frame<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Result<Option<Frame>> {
    let mut head = [0u8; 2];
    match stream.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let fin = head[0] & 0x80 != 0;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => u64::from(stream.read_u16().await?),
        127 => stream.read_u64().await?,
        n => u64::from(n),
    };
    // Far more than any command's output in one frame: a guard against a garbled stream.
    if len > 64 << 20 {
        bail!("a WebSocket frame of {len} bytes");
    }
    let mut mask = [0u8; 4];
    if masked {
        stream.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).await?;
    if masked {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= mask[i % 4]);
    }
    Ok(Some(Frame {
        fin,
        opcode,
        payload,
    }))
}

/// A control frame from the client, which the protocol requires to be masked.
async fn write_frame<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    opcode: u8,
    payload: &[u8],
) -> Result<()> {
    let payload = &payload[..payload.len().min(125)];
    let mask: [u8; 4] = rand::random();
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).await?;
    stream.flush().await?;
    Ok(())
}

/// The objects of one kind, in one namespace or cluster-wide.
pub struct Api<K> {
    client: Client,
    base: String,
    kind: PhantomData<K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            base: self.base.clone(),
            kind: PhantomData,
        }
    }
}

#[derive(Deserialize)]
struct List<K> {
    items: Vec<K>,
}

impl<K: Kind> Api<K> {
    fn call(&self, method: reqwest::Method, suffix: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, &format!("{}{suffix}", self.base))
    }

    pub async fn get(&self, name: &str) -> Result<K> {
        decode(
            self.call(reqwest::Method::GET, &format!("/{name}"))
                .send()
                .await?,
        )
        .await
    }

    /// The object, or None when there is none of that name.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>> {
        match self.get(name).await {
            Ok(object) => Ok(Some(object)),
            Err(e) if ApiError::is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The objects whose labels match a selector (`app=x,tier=y`).
    pub async fn list(&self, selector: &str) -> Result<Vec<K>> {
        let request = self
            .call(reqwest::Method::GET, "")
            .query(&[("labelSelector", selector)]);
        let list: List<K> = decode(request.send().await?).await?;
        Ok(list.items)
    }

    /// Creates an object from its manifest.
    pub async fn create(&self, object: &Value) -> Result<K> {
        let request = self.call(reqwest::Method::POST, "").json(object);
        decode(request.send().await?).await
    }

    /// A JSON merge patch (RFC 7386) of the object.
    pub async fn merge_patch(&self, name: &str, patch: &Value) -> Result<K> {
        decode(self.merge_patch_at(&format!("/{name}"), patch).await?).await
    }

    /// A merge patch of the `scale` subresource (Deployments, StatefulSets).
    pub async fn scale(&self, name: &str, replicas: i32) -> Result<()> {
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        let response = self
            .merge_patch_at(&format!("/{name}/scale"), &patch)
            .await?;
        success(response).await.map(drop)
    }

    async fn merge_patch_at(&self, suffix: &str, patch: &Value) -> Result<reqwest::Response> {
        let request = self
            .call(reqwest::Method::PATCH, suffix)
            .header("content-type", "application/merge-patch+json")
            .body(serde_json::to_vec(patch)?);
        Ok(request.send().await?)
    }

    /// Deletes the object; its dependents go in the background, as kubectl's default.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let request = self
            .call(reqwest::Method::DELETE, &format!("/{name}"))
            .json(&serde_json::json!({"propagationPolicy": "Background"}));
        success(request.send().await?).await.map(drop)
    }

    /// Deletes every object whose labels match the selector.
    pub async fn delete_matching(&self, selector: &str) -> Result<()> {
        let request = self
            .call(reqwest::Method::DELETE, "")
            .query(&[("labelSelector", selector)])
            .json(&serde_json::json!({"propagationPolicy": "Background"}));
        success(request.send().await?).await.map(drop)
    }

    /// A pod's log (`kubectl logs`); only meaningful for pods.
    pub async fn logs(&self, name: &str) -> Result<String> {
        let response = self
            .call(reqwest::Method::GET, &format!("/{name}/log"))
            .send()
            .await?;
        Ok(success(response).await?.text().await?)
    }
}

/// The response when it is a success; the API server's error otherwise.
async fn success(response: reqwest::Response) -> Result<reqwest::Response> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(api_error(response).await.into())
    }
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    let bytes = success(response).await?.bytes().await?;
    serde_json::from_slice(&bytes).context("the API server's answer is not the expected JSON")
}

/// The API server's own message (a v1.Status) when it sent one, else the body's start.
async fn api_error(response: reqwest::Response) -> ApiError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|s| s["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            body.chars()
                .take(200)
                .collect::<String>()
                .trim()
                .to_string()
        });
    ApiError { status, message }
}

fn display_paths(paths: &[PathBuf]) -> String {
    match paths {
        [] => "~/.kube/config (HOME is not set)".into(),
        paths => paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The parts of a kubeconfig (`kind: Config`) a client needs.
#[derive(Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig {
    #[serde(default)]
    current_context: Option<String>,
    #[serde(default)]
    clusters: Vec<Named<ClusterEntry>>,
    #[serde(default)]
    users: Vec<Named<UserEntry>>,
    #[serde(default)]
    contexts: Vec<Named<ContextEntry>>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    value: Option<T>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterEntry {
    server: String,
    certificate_authority: Option<PathBuf>,
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct UserEntry {
    client_certificate: Option<PathBuf>,
    client_certificate_data: Option<String>,
    client_key: Option<PathBuf>,
    client_key_data: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    username: Option<String>,
    password: Option<String>,
    exec: Option<ExecPlugin>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ContextEntry {
    cluster: String,
    #[serde(default)]
    user: String,
    namespace: Option<String>,
}

/// A credential plugin (`gke-gcloud-auth-plugin`, `aws eks get-token`, ...), run as kubectl
/// runs it: its ExecCredential's token or client certificate.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecPlugin {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<EnvVar>,
    api_version: Option<String>,
}

#[derive(Clone, Deserialize)]
struct EnvVar {
    name: String,
    value: String,
}

impl Kubeconfig {
    /// Adds another file's entries; relative file paths in it are relative to its directory.
    fn merge(&mut self, other: Kubeconfig, dir: &Path) {
        let absolute = |p: &mut Option<PathBuf>| {
            if let Some(path) = p.as_mut().filter(|p| p.is_relative()) {
                *path = dir.join(&*path);
            }
        };
        if self.current_context.is_none() {
            self.current_context = other.current_context.filter(|c| !c.is_empty());
        }
        for mut entry in other.clusters {
            if let Some(cluster) = entry.value.as_mut() {
                absolute(&mut cluster.certificate_authority);
            }
            add_unless_named(&mut self.clusters, entry);
        }
        for mut entry in other.users {
            if let Some(user) = entry.value.as_mut() {
                absolute(&mut user.client_certificate);
                absolute(&mut user.client_key);
                absolute(&mut user.token_file);
            }
            add_unless_named(&mut self.users, entry);
        }
        for entry in other.contexts {
            add_unless_named(&mut self.contexts, entry);
        }
    }

    fn client(self) -> Result<Client> {
        let current = self
            .current_context
            .context("the kubeconfig has no current-context")?;
        let context = named(self.contexts, &current)
            .with_context(|| format!("the kubeconfig has no context {current:?}"))?;
        let cluster = named(self.clusters, &context.cluster)
            .with_context(|| format!("the kubeconfig has no cluster {:?}", context.cluster))?;
        let user = named(self.users, &context.user).unwrap_or_default();

        let mut http = http_builder();
        if cluster.insecure_skip_tls_verify {
            http = http.danger_accept_invalid_certs(true);
        } else if let Some(ca) = pem(
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        )? {
            http = http
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&ca)?);
        }
        let mut token = user.token.clone();
        if let Some(file) = &user.token_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the token file {}", file.display()))?;
            token = Some(text.trim().to_string());
        }
        let mut cert = pem(&user.client_certificate_data, &user.client_certificate)?;
        let mut key = pem(&user.client_key_data, &user.client_key)?;
        if let Some(plugin) = &user.exec {
            let credential = plugin.run()?;
            token = credential.token.or(token);
            cert = credential.client_certificate_data.map(String::into_bytes);
            key = credential.client_key_data.map(String::into_bytes);
        }
        if let (Some(mut cert), Some(key)) = (cert, key) {
            cert.push(b'\n');
            cert.extend_from_slice(&key);
            http = http.identity(
                reqwest::Identity::from_pem(&cert).context("the client certificate or key")?,
            );
        }
        if let (Some(name), Some(password)) = (&user.username, &user.password) {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Basic {basic}").parse()?,
            );
            http = http.default_headers(headers);
        }
        Ok(Client {
            http: http.build()?,
            server: cluster.server.trim_end_matches('/').to_string(),
            token,
            default_namespace: context.namespace.unwrap_or_else(|| "default".into()),
        })
    }
}

/// The first file to name an entry wins, as with kubectl.
fn add_unless_named<T>(entries: &mut Vec<Named<T>>, entry: Named<T>) {
    if !entries.iter().any(|e| e.name == entry.name) {
        entries.push(entry);
    }
}

/// The value of the entry called `name`.
fn named<T>(entries: Vec<Named<T>>, name: &str) -> Option<T> {
    entries.into_iter().find(|e| e.name == name)?.value
}

/// PEM text from a kubeconfig's `…-data` (base64) or its file.
fn pem(data: &Option<String>, file: &Option<PathBuf>) -> Result<Option<Vec<u8>>> {
    if let Some(data) = data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .context("a kubeconfig *-data field is not base64")?;
        return Ok(Some(bytes));
    }
    file.as_ref()
        .map(|path| std::fs::read(path).with_context(|| format!("cannot read {}", path.display())))
        .transpose()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecCredentialStatus {
    token: Option<String>,
    client_certificate_data: Option<String>,
    client_key_data: Option<String>,
}

impl ExecPlugin {
    fn run(&self) -> Result<ExecCredentialStatus> {
        let api_version = self
            .api_version
            .clone()
            .unwrap_or_else(|| "client.authentication.k8s.io/v1".into());
        let exec_info = serde_json::json!({
            "apiVersion": api_version, "kind": "ExecCredential",
            "spec": {"interactive": false},
        });
        let output = std::process::Command::new(&self.command)
            .args(&self.args)
            .envs(self.env.iter().map(|e| (&e.name, &e.value)))
            .env("KUBERNETES_EXEC_INFO", exec_info.to_string())
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run the credential plugin {}", self.command))?;
        if !output.status.success() {
            bail!("the credential plugin {} failed", self.command);
        }
        let credential: Value = serde_json::from_slice(&output.stdout)
            .with_context(|| format!("{} printed no ExecCredential", self.command))?;
        Ok(serde_json::from_value(credential["status"].clone())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that yields `input` then ends, and keeps what is written to it.
    fn stream(input: Vec<u8>) -> tokio::io::Join<std::io::Cursor<Vec<u8>>, Vec<u8>> {
        tokio::io::join(std::io::Cursor::new(input), Vec::new())
    }

    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n < 65536 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn exec_channels_split_stdout_stderr_and_status() {
        let long = vec![b'x'; 70_000];
        let mut input = frame(true, 2, b"\x01hello ");
        // A message in two frames, the second a continuation; then a 64-bit length.
        input.extend(frame(false, 2, b"\x01wor"));
        input.extend(frame(true, 0, b"ld\n"));
        input.extend(frame(true, 2, &[&[1u8][..], &long].concat()));
        input.extend(frame(true, 2, b"\x02oops"));
        input.extend(frame(true, 9, b"hi"));
        input.extend(frame(true, 2, b"\x03{\"status\":\"Success\"}"));
        input.extend(frame(true, 8, b""));
        let (out, err, success) = exec_channels(stream(input)).await.unwrap();
        assert_eq!(&out[..12], b"hello world\n");
        assert_eq!(out.len(), 12 + long.len());
        assert_eq!(err, b"oops");
        assert!(success);
    }

    #[tokio::test]
    async fn exec_failure_and_a_cut_stream_are_told_apart() {
        let failed = [
            frame(true, 2, b"\x02sh: nope: not found\n"),
            frame(
                true,
                2,
                b"\x03{\"status\":\"Failure\",\"reason\":\"NonZeroExitCode\"}",
            ),
        ]
        .concat();
        let (_, err, success) = exec_channels(stream(failed)).await.unwrap();
        assert!(!success);
        assert_eq!(err, b"sh: nope: not found\n");

        let cut = frame(true, 2, b"\x01partial");
        let error = exec_channels(stream(cut)).await.unwrap_err();
        assert!(error.to_string().contains("without the command's status"));
    }

    #[tokio::test]
    async fn a_pong_answers_a_ping_masked() {
        let mut io = stream(frame(true, 9, b"abc"));
        let ping = read_frame(&mut io).await.unwrap().unwrap();
        write_frame(&mut io, PONG, &ping.payload).await.unwrap();
        let written = io.into_inner().1;
        assert_eq!(written[0], 0x80 | PONG);
        assert_eq!(written[1], 0x80 | 3);
        let mask = &written[2..6];
        let unmasked: Vec<u8> = written[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(unmasked, b"abc");
    }

    #[test]
    fn merged_kubeconfigs_keep_the_first_name_and_resolve_relative_paths() {
        let first: Kubeconfig = serde_norway::from_str(
            "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u, namespace: lab}\n\
             clusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:6443/', certificate-authority: ca.crt}\n",
        )
        .unwrap();
        let second: Kubeconfig = serde_norway::from_str(
            "current-context: b\nclusters:\n- name: c\n  cluster: {server: 'https://elsewhere'}\n\
             users:\n- name: u\n  user: {token: secret}\n",
        )
        .unwrap();
        let mut config = Kubeconfig::default();
        config.merge(first, Path::new("/etc/k"));
        config.merge(second, Path::new("/other"));
        assert_eq!(config.current_context.as_deref(), Some("a"));
        assert_eq!(config.clusters.len(), 1);
        let cluster = config.clusters[0].value.clone().unwrap();
        assert_eq!(cluster.server, "https://127.0.0.1:6443/");
        assert_eq!(
            cluster.certificate_authority,
            Some(PathBuf::from("/etc/k/ca.crt"))
        );
        // The CA file does not exist: a clear error naming it.
        let error = config.client().err().unwrap().to_string();
        assert!(error.contains("/etc/k/ca.crt"), "{error}");
    }

    #[test]
    fn a_missing_context_is_named() {
        let config: Kubeconfig =
            serde_norway::from_str("current-context: gone\ncontexts: []\n").unwrap();
        let error = config.client().err().unwrap().to_string();
        assert!(error.contains("no context \"gone\""), "{error}");
    }
}

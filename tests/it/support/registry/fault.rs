//! A paging and fault-injecting HTTP proxy in front of a [`TestRegistry`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A fault applied to one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status (no upstream call), with an optional `Retry-After` value.
    Status {
        status: u16,
        retry_after: Option<String>,
    },
    /// Wait before forwarding.
    Delay(Duration),
    /// Send the headers, then the body only after this long.
    SlowBody(Duration),
    /// Send only the first half of the upstream body (with a matching Content-Length).
    Truncate,
    /// Answer `307` to `<base><path and query>` (as registries redirect blobs to storage).
    Redirect(String),
    /// Add a `Link` to a page never seen before (a registry that paginates forever).
    EndlessLinks,
    /// Send the headers (with the full Content-Length) and half the body, then drop the
    /// connection (a reset mid-response).
    Reset,
    /// Answer 200 with a body of this many bytes (`{"tags":["` then spaces), made as it is
    /// sent, with its Content-Length: a registry or proxy sending a huge page or manifest.
    Huge(usize),
    /// Send the body one byte at a time, this long apart (each byte is on time; the whole is
    /// not).
    Trickle(Duration),
}

/// A queued fault: applied to the next `times` requests whose path contains `path`.
#[derive(Debug, Clone)]
struct QueuedFault {
    path: String,
    fault: Fault,
    times: usize,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct ProxySettings {
    /// Paginate tag lists: default `n` when the client gives none.
    page_size: Option<usize>,
    /// Answer 400 when `n` is above this.
    max_page: Option<usize>,
    /// Absolute `Link` URLs instead of relative ones.
    absolute_links: bool,
    faults: Vec<QueuedFault>,
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    settings: Mutex<ProxySettings>,
    seen: Mutex<Vec<SeenRequest>>,
    strip_digest: AtomicBool,
    /// Remove the client's `Authorization` before forwarding, this many more times.
    drop_auth: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Upstream tag list bodies by path, taken on a first page (no `last`) and served for the
    /// following pages, as a snapshot.
    tag_snapshots: Mutex<std::collections::HashMap<String, Vec<u8>>>,
    /// Pages linked so far by [`Fault::EndlessLinks`].
    endless_pages: AtomicUsize,
    port: u16,
}

/// A proxy in front of a [`TestRegistry`]; stops on drop.
pub struct FaultProxy {
    state: Arc<ProxyState>,
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Start a proxy forwarding to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("proxy client"),
            settings: Mutex::new(ProxySettings::default()),
            seen: Mutex::new(Vec::new()),
            strip_digest: AtomicBool::new(false),
            drop_auth: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            tag_snapshots: Mutex::new(std::collections::HashMap::new()),
            endless_pages: AtomicUsize::new(0),
            port,
        });
        let app = axum::Router::new()
            .fallback(proxy_handler)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy { state, port, task }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn image(&self, repository: &str) -> String {
        format!("{}/{repository}", self.host())
    }

    /// Paginate tag lists with `n` (when the client sends none) and `Link` headers.
    pub fn paginate(&self, default_page: usize) {
        self.state.settings.lock().expect("settings").page_size = Some(default_page);
    }

    /// Answer 400 to tag list pages asking for more than `max` tags.
    pub fn max_page(&self, max: usize) {
        self.state.settings.lock().expect("settings").max_page = Some(max);
    }

    pub fn absolute_links(&self, on: bool) {
        self.state.settings.lock().expect("settings").absolute_links = on;
    }

    /// Remove `Docker-Content-Digest` from every response.
    pub fn strip_digest(&self, on: bool) {
        self.state.strip_digest.store(on, Ordering::SeqCst);
    }

    /// Apply `fault` to the next `times` requests whose path contains `path`.
    pub fn fault(&self, path: &str, fault: Fault, times: usize) {
        self.state
            .settings
            .lock()
            .expect("settings")
            .faults
            .push(QueuedFault {
                path: path.to_string(),
                fault,
                times,
            });
    }

    /// Answer 503 to every tags list from now on (a registry that is down for listing).
    pub fn fail_tag_lists(&self) {
        self.fault(
            "/tags/list",
            Fault::Status {
                status: 503,
                retry_after: None,
            },
            1000,
        );
    }

    /// Forward the next `times` requests without their `Authorization` header, so the
    /// registry answers 401 with its challenge (as for an expired or revoked token).
    pub fn drop_auth(&self, times: usize) {
        self.state.drop_auth.store(times, Ordering::SeqCst);
    }

    /// The most requests the proxy had in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state.seen.lock().expect("seen").clone()
    }

    /// Requests whose path and query contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.target.contains(needle))
            .count()
    }

    /// Drop every queued fault.
    pub fn clear_faults(&self) {
        self.state.settings.lock().expect("settings").faults.clear();
    }

    /// Forget the recorded requests.
    pub fn clear(&self) {
        self.state.seen.lock().expect("seen").clear();
    }
}

fn take_fault(state: &ProxyState, path: &str) -> Option<Fault> {
    let mut settings = state.settings.lock().expect("settings");
    let index = settings
        .faults
        .iter()
        .position(|f| f.times > 0 && path.contains(&f.path))?;
    let queued = &mut settings.faults[index];
    queued.times -= 1;
    let fault = queued.fault.clone();
    if queued.times == 0 {
        settings.faults.remove(index);
    }
    Some(fault)
}

async fn proxy_handler(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let response = proxy(&state, request).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn proxy(state: &ProxyState, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let target = request
        .uri()
        .path_and_query()
        .map_or(path.clone(), |p| p.as_str().to_string());
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    state.seen.lock().expect("seen").push(SeenRequest {
        method: method.to_string(),
        target: target.clone(),
        authorization: authorization.clone(),
    });
    let fault = take_fault(state, &path);
    match &fault {
        Some(Fault::Status {
            status,
            retry_after,
        }) => {
            let mut response = Response::new(Body::from(format!(
                "{{\"errors\":[{{\"code\":\"INJECTED\",\"message\":\"injected {status}\"}}]}}"
            )));
            *response.status_mut() = StatusCode::from_u16(*status).expect("status");
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from_str(value).expect("value"));
            }
            return response;
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(*delay).await,
        Some(Fault::Redirect(base)) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            response.headers_mut().insert(
                "location",
                HeaderValue::from_str(&format!("{base}{target}")).expect("location"),
            );
            return response;
        }
        _ => {}
    }

    let query: Vec<(String, String)> = request.uri().query().map(url_pairs).unwrap_or_default();
    let paginate = {
        let settings = state.settings.lock().expect("settings");
        (
            settings.page_size,
            settings.max_page,
            settings.absolute_links,
        )
    };
    let is_tags = method == "GET" && path.ends_with("/tags/list");
    let asked_n = query
        .iter()
        .find(|(k, _)| k == "n")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if is_tags
        && let (Some(max), Some(n)) = (paginate.1, asked_n)
        && n > max
    {
        return (
            StatusCode::BAD_REQUEST,
            format!("{{\"errors\":[{{\"code\":\"PAGINATION_NUMBER_INVALID\",\"message\":\"n above {max}\"}}]}}"),
        )
            .into_response();
    }

    let paging = is_tags && paginate.0.is_some();
    let has_last = query.iter().any(|(k, _)| k == "last");
    if paging
        && has_last
        && let Some(body) = state
            .tag_snapshots
            .lock()
            .expect("snapshots")
            .get(&path)
            .cloned()
    {
        return tags_page(
            state,
            &path,
            &query,
            asked_n,
            paginate,
            body,
            HeaderMap::new(),
            &fault,
        );
    }
    let upstream_target = if paging { path.clone() } else { target.clone() };
    let mut upstream = state.http.request(
        method.clone(),
        format!("{}{upstream_target}", state.upstream),
    );
    let drop_auth = state
        .drop_auth
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    for (name, value) in request.headers() {
        if drop_auth && name == "authorization" {
            continue;
        }
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let upstream = match upstream.body(body).send().await {
        Ok(response) => response,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = upstream.status();
    let headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.unwrap_or_default().to_vec();

    if paging && status == StatusCode::OK {
        state
            .tag_snapshots
            .lock()
            .expect("snapshots")
            .insert(path.clone(), bytes.clone());
        return tags_page(
            state, &path, &query, asked_n, paginate, bytes, headers, &fault,
        );
    }
    finish(state, method == "HEAD", status, headers, bytes, fault)
}

/// One page of a snapshot tag list, with a `Link` to the next.
#[allow(clippy::too_many_arguments)]
fn tags_page(
    state: &ProxyState,
    path: &str,
    query: &[(String, String)],
    asked_n: Option<usize>,
    paginate: (Option<usize>, Option<usize>, bool),
    body: Vec<u8>,
    mut headers: HeaderMap,
    fault: &Option<Fault>,
) -> Response {
    let mut list: serde_json::Value = serde_json::from_slice(&body).expect("tag list json");
    let mut tags: Vec<String> = list["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    if let Some((_, last)) = query.iter().find(|(k, _)| k == "last") {
        tags.retain(|t| t > last);
    }
    let n = asked_n.or(paginate.0).unwrap_or(100).max(1);
    let more = tags.len() > n;
    tags.truncate(n);
    list["tags"] = serde_json::json!(tags);
    let bytes = serde_json::to_vec(&list).expect("json");
    headers.remove("link");
    if more && let Some(last_tag) = tags.last() {
        let prefix = if paginate.2 {
            format!("http://127.0.0.1:{}", state.port)
        } else {
            String::new()
        };
        let link = format!("<{prefix}{path}?n={n}&last={last_tag}>; rel=\"next\"");
        headers.insert("link", HeaderValue::from_str(&link).expect("link"));
    }
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    finish(state, false, StatusCode::OK, headers, bytes, fault.clone())
}

/// Apply the response-side faults and build the response.
fn finish(
    state: &ProxyState,
    head: bool,
    status: StatusCode,
    mut headers: HeaderMap,
    mut bytes: Vec<u8>,
    fault: Option<Fault>,
) -> Response {
    if state.strip_digest.load(Ordering::SeqCst) {
        headers.remove("docker-content-digest");
    }
    if matches!(fault, Some(Fault::Truncate)) {
        bytes.truncate(bytes.len() / 2);
    }
    if matches!(fault, Some(Fault::EndlessLinks)) {
        let page = state.endless_pages.fetch_add(1, Ordering::SeqCst);
        let link = format!("<?n=10&endless={page}>; rel=\"next\"");
        headers.insert("link", HeaderValue::from_str(&link).expect("link"));
    }
    headers.remove("content-length");
    headers.remove("transfer-encoding");
    headers.remove("connection");
    let body = match fault {
        Some(Fault::SlowBody(delay)) => {
            let stream = async_stream_body(bytes, delay);
            Body::from_stream(stream)
        }
        Some(Fault::Reset) => {
            headers.insert(
                "content-length",
                HeaderValue::from_str(&bytes.len().to_string()).expect("len"),
            );
            let half = bytes[..bytes.len() / 2].to_vec();
            Body::from_stream(futures_util::stream::iter([
                Ok(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected reset",
                )),
            ]))
        }
        Some(Fault::Huge(size)) => {
            headers.insert(
                "content-length",
                HeaderValue::from_str(&size.to_string()).expect("len"),
            );
            Body::from_stream(huge_body(size))
        }
        Some(Fault::Trickle(interval)) => {
            let stream =
                futures_util::stream::unfold((bytes, 0usize), move |(bytes, at)| async move {
                    let byte = *bytes.get(at)?;
                    if at > 0 {
                        tokio::time::sleep(interval).await;
                    }
                    Some((Ok::<_, std::io::Error>(vec![byte]), (bytes, at + 1)))
                });
            Body::from_stream(stream)
        }
        _ => {
            if !head {
                headers.insert(
                    "content-length",
                    HeaderValue::from_str(&bytes.len().to_string()).expect("len"),
                );
            }
            Body::from(bytes)
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// `size` bytes of a JSON start followed by spaces, in 64 KiB chunks made as they are sent.
fn huge_body(size: usize) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    const CHUNK: usize = 64 * 1024;
    futures_util::stream::unfold(0usize, move |sent| async move {
        if sent >= size {
            return None;
        }
        let len = CHUNK.min(size - sent);
        let mut chunk = vec![b' '; len];
        if sent == 0 {
            let start = b"{\"tags\":[";
            let n = start.len().min(len);
            chunk[..n].copy_from_slice(&start[..n]);
        }
        Some((Ok(chunk), sent + len))
    })
}

/// A body that sends its first byte at once and the rest after `delay`.
fn async_stream_body(
    bytes: Vec<u8>,
    delay: Duration,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let mut chunks = VecDeque::new();
    if !bytes.is_empty() {
        chunks.push_back((Duration::ZERO, bytes[..1].to_vec()));
        chunks.push_back((delay, bytes[1..].to_vec()));
    }
    futures_util::stream::unfold(chunks, |mut chunks| async move {
        let (wait, chunk) = chunks.pop_front()?;
        tokio::time::sleep(wait).await;
        Some((Ok(chunk), chunks))
    })
}

//! A fake LiveKit server for integration tests: the slice of LiveKit's server
//! API that duecall uses (rooms and explicit agent dispatch), spoken as real
//! Twirp over HTTP on 127.0.0.1, plus webhooks signed the way LiveKit signs them.
//!
//! What is faithful to LiveKit (livekit-server's `pkg/service` and Twirp v8):
//!
//! * **Pipeline order.** The API-key middleware runs first, on every path; then
//!   Twirp routes (POST only, `/twirp/<pkg>.<Service>/<Method>`), checks the
//!   Content-Type, decodes the protobuf body, and only then does the service
//!   method check the token's grants.
//! * **Bad credentials.** An `Authorization` header that is not `Bearer …`, a
//!   token that does not parse, names another API key, has a bad signature or
//!   is expired or not yet valid: HTTP 401 with a *plain-text* body, as
//!   livekit-server's middleware writes it. It is not a Twirp error, so the
//!   Rust client reports it as `ServerError::Request` (it fails to decode the
//!   error body as JSON), not as a Twirp code.
//! * **Missing or insufficient grants.** No `Authorization` header at all, or
//!   a token without the grant: Twirp `unauthenticated` (401), message
//!   "permissions denied". LiveKit wraps `ErrPermissionDenied` as
//!   `unauthenticated`, never `permission_denied`. Grants: `roomCreate` for
//!   CreateRoom and DeleteRoom, `roomList` for ListRooms, and `roomAdmin` with
//!   `room` equal to the request's room for CreateDispatch and ListDispatch.
//! * **Twirp errors.** A JSON body `{"code","msg","meta"?}` with
//!   `Content-Type: application/json` and the status Twirp maps the code to
//!   (see [`twirp_status`]). A non-POST request, an unknown path or an
//!   unexpected Content-Type gets `bad_route` (404). A body that is not the
//!   request message gets `malformed` (400).
//! * **Success.** 200, `Content-Type: application/protobuf`, the response
//!   message encoded with prost.
//! * **Rooms.** CreateRoom on an existing name answers the existing room (same
//!   sid, no second record) after copying the request's non-zero
//!   `empty_timeout`, `departure_timeout`, `max_participants` and non-empty
//!   `metadata` onto it, as LiveKit's room allocator does. A new room gets sid
//!   `RM_…`, its creation time, and LiveKit's default `empty_timeout` (300 s)
//!   and `departure_timeout` (20 s) unless the request sets them. Metadata over
//!   512 KiB and names over 256 bytes (LiveKit's default limits) are
//!   `invalid_argument`. DeleteRoom of an unknown room is `not_found`
//!   ("requested room does not exist").
//! * **Dispatch.** CreateDispatch creates the room if it does not exist (room
//!   auto-creation is on by default), accepts an empty `agent_name` as LiveKit
//!   does, and answers an `AgentDispatch` with id `AD_…` and the request's
//!   agent name, room, metadata, restart policy, deployment and attributes.
//!   ListDispatch answers the room's dispatches (filtered by `dispatch_id` if
//!   set). Deleting a room ends its dispatches.
//! * **Webhooks.** [`FakeLiveKit::webhook`] builds a `WebhookEvent` as proto
//!   JSON (camelCase, defaults omitted, int64 as strings) and signs it as
//!   LiveKit's notifier does: a JWT from the API key and secret, valid for five
//!   minutes, carrying the base64 SHA-256 of the body in its `sha256` claim,
//!   sent as the bare `Authorization` header value (no "Bearer ").
//!
//! What is not: JSON Twirp (`application/json` bodies are refused as an
//! unexpected Content-Type), the `access_token` query parameter, every other
//! RoomService / AgentDispatchService method (they answer `bad_route`),
//! participants, egress, and region failover (only LiveKit Cloud hosts fail
//! over, and this server is on 127.0.0.1).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method as HttpMethod, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use livekit_api::access_token::{AccessToken, Claims, TokenVerifier};
use livekit_protocol as proto;
use prost::Message as _;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

/// The Content-Type LiveKit posts webhooks with.
pub const WEBHOOK_CONTENT_TYPE: &str = "application/webhook+json";

/// The methods this fake serves, by their Twirp method name.
pub const METHODS: &[&str] = &[
    "CreateRoom",
    "DeleteRoom",
    "ListRooms",
    "CreateDispatch",
    "ListDispatch",
];

/// LiveKit's default limits (`limit.max_metadata_size`, `max_room_name_length`).
const MAX_METADATA_SIZE: usize = 512 * 1024;
const MAX_ROOM_NAME_LENGTH: usize = 256;
/// LiveKit's default `room.empty_timeout` and `room.departure_timeout`.
const DEFAULT_EMPTY_TIMEOUT: u32 = 5 * 60;
const DEFAULT_DEPARTURE_TIMEOUT: u32 = 20;
/// Bodies larger than this are refused (LiveKit limits API bodies too).
const MAX_BODY: usize = 4 * 1024 * 1024;
/// How long LiveKit's webhook tokens are valid.
const WEBHOOK_TOKEN_TTL: Duration = Duration::from_secs(5 * 60);

/// A room as the fake holds it, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    pub name: String,
    pub sid: String,
    pub metadata: String,
    pub empty_timeout: u32,
    pub departure_timeout: u32,
    pub max_participants: u32,
}

/// An agent dispatch the fake accepted, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchRecord {
    pub id: String,
    pub room: String,
    pub agent_name: String,
    pub metadata: String,
}

/// A running fake LiveKit server. The server stops when this is dropped.
pub struct FakeLiveKit {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    api_key: String,
    api_secret: String,
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    /// Live rooms, in creation order.
    rooms: Vec<proto::Room>,
    /// Every dispatch ever accepted, with the sid of the room it belongs to
    /// (a later room of the same name does not inherit them).
    dispatches: Vec<(String, proto::AgentDispatch)>,
    deleted_rooms: Vec<String>,
    calls: HashMap<&'static str, usize>,
    auth_failures: usize,
    fail_next: HashMap<&'static str, VecDeque<&'static str>>,
    fail_always: HashMap<&'static str, &'static str>,
    delays: HashMap<&'static str, Duration>,
    /// Where `room_finished` is posted when a room is deleted (as LiveKit
    /// does), before DeleteRoom answers: the worst order for the caller.
    room_finished_to: Option<String>,
}

impl FakeLiveKit {
    /// Binds 127.0.0.1 on a free port with a fresh random API key and secret,
    /// and serves until dropped.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake LiveKit on 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            api_key: format!("APIfake{}", random_hex(12)),
            api_secret: random_hex(48),
            state: Mutex::new(FakeState::default()),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            // The task is aborted on drop; a serve error just ends it, and the
            // tests then see connection errors.
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}"),
            shared,
            task,
        }
    }

    /// The server's base URL, `http://127.0.0.1:PORT` (what LIVEKIT_URL holds).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    pub fn api_secret(&self) -> &str {
        &self.shared.api_secret
    }

    /// The live rooms (deleted ones are gone), in creation order.
    pub fn rooms(&self) -> Vec<RoomRecord> {
        self.state().rooms.iter().map(room_record).collect()
    }

    /// The live room of that name, if any.
    pub fn room(&self, name: &str) -> Option<RoomRecord> {
        self.state()
            .rooms
            .iter()
            .find(|r| r.name == name)
            .map(room_record)
    }

    /// Every dispatch accepted so far, in order, including those of rooms
    /// deleted since.
    pub fn dispatches(&self) -> Vec<DispatchRecord> {
        self.state()
            .dispatches
            .iter()
            .map(|(_, d)| DispatchRecord {
                id: d.id.clone(),
                room: d.room.clone(),
                agent_name: d.agent_name.clone(),
                metadata: d.metadata.clone(),
            })
            .collect()
    }

    /// Names of the rooms DeleteRoom removed, in order.
    pub fn deleted_rooms(&self) -> Vec<String> {
        self.state().deleted_rooms.clone()
    }

    /// How many POSTs reached `method`'s path ("CreateRoom", …), whatever
    /// became of them: rejected credentials, bad Content-Type or body, missing
    /// grants and injected faults all count.
    pub fn calls(&self, method: &str) -> usize {
        let method = known_method(method);
        self.state().calls.get(method).copied().unwrap_or(0)
    }

    /// How many requests were answered 401: bad credentials (plain-text
    /// answer) plus missing or insufficient grants (Twirp `unauthenticated`).
    pub fn auth_failures(&self) -> usize {
        self.state().auth_failures
    }

    /// The next `n` calls of `method` answer the Twirp error `code` without
    /// touching any state. Calls queue up: `fail_next(m, 1, "unavailable")`
    /// then `fail_next(m, 1, "internal")` fails the next two calls in that
    /// order. A fault is spent only by a request that got past authentication,
    /// decoding and the grant check, i.e. one LiveKit would have served.
    pub fn fail_next(&self, method: &str, n: usize, code: &str) {
        let method = known_method(method);
        let code = known_code(code);
        self.state()
            .fail_next
            .entry(method)
            .or_default()
            .extend((0..n).map(|_| code));
    }

    /// Every call of `method` answers the Twirp error `code` (after any
    /// `fail_next` faults are spent) until cleared with `None`.
    pub fn fail_always(&self, method: &str, code: Option<&str>) {
        let method = known_method(method);
        let mut state = self.state();
        match code {
            Some(code) => {
                let code = known_code(code);
                state.fail_always.insert(method, code);
            }
            None => {
                state.fail_always.remove(method);
            }
        }
    }

    /// Every call of `method` waits `delay` before it is processed at all (for
    /// client-timeout tests); `Duration::ZERO` clears it.
    pub fn delay(&self, method: &str, delay: Duration) {
        let method = known_method(method);
        let mut state = self.state();
        if delay.is_zero() {
            state.delays.remove(method);
        } else {
            state.delays.insert(method, delay);
        }
    }

    /// From now on, deleting a room posts LiveKit's `room_finished` webhook
    /// for it to `url` (signed as LiveKit signs), and DeleteRoom answers only
    /// once that webhook has been answered: the order in which a real server's
    /// webhook can overtake the caller.
    pub fn post_room_finished_to(&self, url: &str) {
        self.state().room_finished_to = Some(url.to_owned());
    }

    /// A webhook `event` ("room_started", "room_finished", …) about
    /// `room_name`, as LiveKit would post it: `(body, authorization)`, where
    /// `authorization` is the whole `Authorization` header value. The room is
    /// the fake's live room of that name if there is one, else a made-up room
    /// with a fresh sid. Post it with [`WEBHOOK_CONTENT_TYPE`].
    pub fn webhook(&self, event: &str, room_name: &str) -> (String, String) {
        self.webhook_with(self.api_secret(), event, room_name)
    }

    /// Like [`webhook`](Self::webhook) but signed with `api_secret` instead of
    /// the server's secret (still naming the server's API key), for tests of
    /// rejection.
    pub fn webhook_with(&self, api_secret: &str, event: &str, room_name: &str) -> (String, String) {
        let room = self
            .state()
            .rooms
            .iter()
            .find(|r| r.name == room_name)
            .cloned()
            .unwrap_or_else(|| {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                proto::Room {
                    sid: guid("RM_"),
                    name: room_name.to_owned(),
                    empty_timeout: DEFAULT_EMPTY_TIMEOUT,
                    departure_timeout: DEFAULT_DEPARTURE_TIMEOUT,
                    creation_time: now.as_secs() as i64,
                    creation_time_ms: now.as_millis() as i64,
                    ..Default::default()
                }
            });
        let body = webhook_body(event, room);
        let authorization = sign_webhook(self.api_key(), api_secret, &body);
        (body, authorization)
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.shared.lock()
    }
}

impl Drop for FakeLiveKit {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A webhook event's body as LiveKit posts it.
fn webhook_body(event: &str, room: proto::Room) -> String {
    let event = proto::WebhookEvent {
        event: event.to_owned(),
        room: Some(room),
        id: guid("EV_"),
        created_at: unix_now(),
        ..Default::default()
    };
    serde_json::to_string(&event).expect("serialise the webhook event")
}

/// The `Authorization` header value LiveKit sends with a webhook `body`: a JWT
/// signed with the key pair, valid five minutes, whose `sha256` claim is the
/// base64 (standard alphabet, padded) SHA-256 of the body.
pub fn sign_webhook(api_key: &str, api_secret: &str, body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let sha = base64::engine::general_purpose::STANDARD.encode(digest);
    AccessToken::with_api_key(api_key, api_secret)
        .with_ttl(WEBHOOK_TOKEN_TTL)
        .with_sha256(&sha)
        .to_jwt()
        .expect("sign the webhook token")
}

/// Twirp v8's error codes and the HTTP status its server answers each with.
const TWIRP_CODES: &[(&str, u16)] = &[
    ("canceled", 408),
    ("unknown", 500),
    ("invalid_argument", 400),
    ("malformed", 400),
    ("deadline_exceeded", 408),
    ("not_found", 404),
    ("bad_route", 404),
    ("already_exists", 409),
    ("permission_denied", 403),
    ("unauthenticated", 401),
    ("resource_exhausted", 429),
    ("failed_precondition", 412),
    ("aborted", 409),
    ("out_of_range", 400),
    ("unimplemented", 501),
    ("internal", 500),
    ("unavailable", 503),
    ("data_loss", 500),
];

/// The HTTP status Twirp answers an error code with, `None` for a code Twirp
/// does not define.
pub fn twirp_status(code: &str) -> Option<StatusCode> {
    TWIRP_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .and_then(|(_, status)| StatusCode::from_u16(*status).ok())
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A test that panicked while holding the lock must not wedge the server.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One of the methods served, by Twirp service and method name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    CreateRoom,
    DeleteRoom,
    ListRooms,
    CreateDispatch,
    ListDispatch,
}

impl Method {
    fn from_path(path: &str) -> Option<Self> {
        match path {
            "/twirp/livekit.RoomService/CreateRoom" => Some(Self::CreateRoom),
            "/twirp/livekit.RoomService/DeleteRoom" => Some(Self::DeleteRoom),
            "/twirp/livekit.RoomService/ListRooms" => Some(Self::ListRooms),
            "/twirp/livekit.AgentDispatchService/CreateDispatch" => Some(Self::CreateDispatch),
            "/twirp/livekit.AgentDispatchService/ListDispatch" => Some(Self::ListDispatch),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::CreateRoom => "CreateRoom",
            Self::DeleteRoom => "DeleteRoom",
            Self::ListRooms => "ListRooms",
            Self::CreateDispatch => "CreateDispatch",
            Self::ListDispatch => "ListDispatch",
        }
    }
}

/// Why a request was not served.
enum Rejection {
    /// livekit-server's API-key middleware: 401 with a plain-text body.
    Credentials(String),
    /// No grants, or not the one the method needs.
    Grants,
    Twirp(TwirpError),
}

struct TwirpError {
    code: &'static str,
    msg: String,
    meta: Vec<(&'static str, String)>,
}

impl TwirpError {
    fn new(code: &'static str, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            meta: Vec::new(),
        }
    }

    fn with_meta(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.meta.push((key, value.into()));
        self
    }

    fn bad_route(msg: String, method: &HttpMethod, path: &str) -> Self {
        Self::new("bad_route", msg).with_meta("twirp_invalid_route", format!("{method} {path}"))
    }
}

impl From<TwirpError> for Rejection {
    fn from(e: TwirpError) -> Self {
        Self::Twirp(e)
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Credentials(msg) => (StatusCode::UNAUTHORIZED, msg).into_response(),
            // LiveKit's twirpAuthError: ErrPermissionDenied as `unauthenticated`.
            Rejection::Grants => {
                Rejection::Twirp(TwirpError::new("unauthenticated", "permissions denied"))
                    .into_response()
            }
            Rejection::Twirp(e) => {
                let mut body = serde_json::json!({ "code": e.code, "msg": e.msg });
                if !e.meta.is_empty() {
                    let meta: serde_json::Map<String, serde_json::Value> = e
                        .meta
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
                        .collect();
                    body["meta"] = serde_json::Value::Object(meta);
                }
                let status = twirp_status(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut response = (status, body.to_string()).into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
        }
    }
}

/// Every request lands here; the pipeline follows livekit-server's order.
async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    match serve(&shared, request).await {
        Ok(body) => {
            let mut response = Response::new(Body::from(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/protobuf"),
            );
            response
        }
        Err(rejection) => {
            if matches!(rejection, Rejection::Credentials(_) | Rejection::Grants) {
                shared.lock().auth_failures += 1;
            }
            rejection.into_response()
        }
    }
}

async fn serve(shared: &Shared, request: Request) -> Result<Vec<u8>, Rejection> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let method = Method::from_path(&path);

    if let Some(m) = method.filter(|_| parts.method == HttpMethod::POST) {
        let delay = {
            let mut state = shared.lock();
            *state.calls.entry(m.name()).or_default() += 1;
            state.delays.get(m.name()).copied()
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
    }

    // livekit-server's API-key middleware, ahead of all routing.
    let claims = authenticate(shared, &parts.headers)?;

    // Twirp routing.
    if parts.method != HttpMethod::POST {
        let msg = format!(
            "unsupported method {:?} (only POST is allowed)",
            parts.method.as_str()
        );
        return Err(TwirpError::bad_route(msg, &parts.method, &path).into());
    }
    let Some(method) = method else {
        let msg = format!("no handler for path {path:?}");
        return Err(TwirpError::bad_route(msg, &parts.method, &path).into());
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/protobuf") {
        let msg = if media_type.eq_ignore_ascii_case("application/json") {
            format!("unexpected Content-Type: {content_type:?} (the fake speaks only application/protobuf)")
        } else {
            format!("unexpected Content-Type: {content_type:?}")
        };
        return Err(TwirpError::bad_route(msg, &parts.method, &path).into());
    }
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        TwirpError::new("malformed", "failed to read request body")
            .with_meta("cause", e.to_string())
    })?;

    let claims = claims.as_ref();
    match method {
        Method::CreateRoom => {
            let req: proto::CreateRoomRequest = decode(&body)?;
            require(claims.is_some_and(|c| c.video.room_create))?;
            inject(shared, method)?;
            Ok(create_room(shared, req)?.encode_to_vec())
        }
        Method::DeleteRoom => {
            let req: proto::DeleteRoomRequest = decode(&body)?;
            require(claims.is_some_and(|c| c.video.room_create))?;
            inject(shared, method)?;
            let (answer, finished) = delete_room(shared, req)?;
            if let Some((url, room)) = finished {
                let body = webhook_body("room_finished", room);
                let authorization = sign_webhook(&shared.api_key, &shared.api_secret, &body);
                let _ = reqwest::Client::new()
                    .post(url)
                    .header(header::CONTENT_TYPE, WEBHOOK_CONTENT_TYPE)
                    .header(header::AUTHORIZATION, authorization)
                    .body(body)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
            }
            Ok(answer.encode_to_vec())
        }
        Method::ListRooms => {
            let req: proto::ListRoomsRequest = decode(&body)?;
            require(claims.is_some_and(|c| c.video.room_list))?;
            inject(shared, method)?;
            Ok(list_rooms(shared, req).encode_to_vec())
        }
        Method::CreateDispatch => {
            let req: proto::CreateAgentDispatchRequest = decode(&body)?;
            require(is_room_admin(claims, &req.room))?;
            inject(shared, method)?;
            Ok(create_dispatch(shared, req)?.encode_to_vec())
        }
        Method::ListDispatch => {
            let req: proto::ListAgentDispatchRequest = decode(&body)?;
            require(is_room_admin(claims, &req.room))?;
            inject(shared, method)?;
            Ok(list_dispatch(shared, req).encode_to_vec())
        }
    }
}

/// livekit-server's `APIKeyAuthMiddleware`: no header passes with no grants;
/// a header that is there must be a valid `Bearer` token for our key.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Option<Claims>, Rejection> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = String::from_utf8_lossy(value.as_bytes());
    let Some(token) = value.strip_prefix("Bearer ") else {
        return Err(Rejection::Credentials(
            "invalid authorization header. Must start with Bearer ".to_owned(),
        ));
    };
    if token.is_empty() {
        return Ok(None);
    }
    let unverified = Claims::from_unverified(token)
        .map_err(|_| Rejection::Credentials("invalid authorization token".to_owned()))?;
    if unverified.iss != shared.api_key {
        return Err(Rejection::Credentials("invalid API key".to_owned()));
    }
    TokenVerifier::with_api_key(&shared.api_key, &shared.api_secret)
        .verify(token)
        .map(Some)
        .map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(ToString::to_string)
                .unwrap_or_else(|| e.to_string());
            Rejection::Credentials(format!("invalid authorization token: {cause}"))
        })
}

fn decode<T: prost::Message + Default>(body: &[u8]) -> Result<T, TwirpError> {
    T::decode(body).map_err(|e| {
        TwirpError::new("malformed", "the protobuf request could not be decoded")
            .with_meta("cause", e.to_string())
    })
}

fn require(granted: bool) -> Result<(), Rejection> {
    if granted {
        Ok(())
    } else {
        Err(Rejection::Grants)
    }
}

/// LiveKit's `EnsureAdminPermission`: `roomAdmin` for exactly this room.
fn is_room_admin(claims: Option<&Claims>, room: &str) -> bool {
    claims.is_some_and(|c| c.video.room_admin && c.video.room == room)
}

/// Spends an injected fault, if one is set for this method.
fn inject(shared: &Shared, method: Method) -> Result<(), TwirpError> {
    let mut state = shared.lock();
    let code = match state
        .fail_next
        .get_mut(method.name())
        .and_then(VecDeque::pop_front)
    {
        Some(code) => Some(code),
        None => state.fail_always.get(method.name()).copied(),
    };
    match code {
        Some(code) => Err(TwirpError::new(
            code,
            format!("{code} injected by FakeLiveKit"),
        )),
        None => Ok(()),
    }
}

fn create_room(shared: &Shared, req: proto::CreateRoomRequest) -> Result<proto::Room, TwirpError> {
    if req.name.len() > MAX_ROOM_NAME_LENGTH {
        return Err(TwirpError::new(
            "invalid_argument",
            format!("room name length exceeds limits: max length {MAX_ROOM_NAME_LENGTH}"),
        ));
    }
    if req.metadata.len() > MAX_METADATA_SIZE {
        return Err(TwirpError::new(
            "invalid_argument",
            "metadata size exceeds limits",
        ));
    }
    let mut state = shared.lock();
    let index = match state.rooms.iter().position(|r| r.name == req.name) {
        Some(index) => index,
        None => {
            state.rooms.push(new_room(&req.name));
            state.rooms.len() - 1
        }
    };
    let room = &mut state.rooms[index];
    if req.empty_timeout > 0 {
        room.empty_timeout = req.empty_timeout;
    }
    if req.departure_timeout > 0 {
        room.departure_timeout = req.departure_timeout;
    }
    if req.max_participants > 0 {
        room.max_participants = req.max_participants;
    }
    if !req.metadata.is_empty() {
        room.metadata = req.metadata;
    }
    Ok(room.clone())
}

fn new_room(name: &str) -> proto::Room {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    proto::Room {
        sid: guid("RM_"),
        name: name.to_owned(),
        empty_timeout: DEFAULT_EMPTY_TIMEOUT,
        departure_timeout: DEFAULT_DEPARTURE_TIMEOUT,
        creation_time: now.as_secs() as i64,
        creation_time_ms: now.as_millis() as i64,
        turn_password: random_hex(32),
        ..Default::default()
    }
}

/// The answer, and where to post `room_finished` for the deleted room (if set).
type Deleted = (proto::DeleteRoomResponse, Option<(String, proto::Room)>);

fn delete_room(shared: &Shared, req: proto::DeleteRoomRequest) -> Result<Deleted, TwirpError> {
    let mut state = shared.lock();
    let Some(index) = state.rooms.iter().position(|r| r.name == req.room) else {
        return Err(TwirpError::new(
            "not_found",
            "requested room does not exist",
        ));
    };
    let room = state.rooms.remove(index);
    state.deleted_rooms.push(req.room);
    let finished = state.room_finished_to.clone().map(|url| (url, room));
    Ok((proto::DeleteRoomResponse {}, finished))
}

fn list_rooms(shared: &Shared, req: proto::ListRoomsRequest) -> proto::ListRoomsResponse {
    let state = shared.lock();
    let rooms = state
        .rooms
        .iter()
        .filter(|r| req.names.is_empty() || req.names.contains(&r.name))
        .cloned()
        .collect();
    proto::ListRoomsResponse { rooms }
}

fn create_dispatch(
    shared: &Shared,
    req: proto::CreateAgentDispatchRequest,
) -> Result<proto::AgentDispatch, TwirpError> {
    if req.metadata.len() > MAX_METADATA_SIZE {
        return Err(TwirpError::new(
            "invalid_argument",
            "metadata size exceeds limits",
        ));
    }
    let mut state = shared.lock();
    let room_sid = match state.rooms.iter().find(|r| r.name == req.room) {
        Some(room) => room.sid.clone(),
        None => {
            let room = new_room(&req.room);
            let sid = room.sid.clone();
            state.rooms.push(room);
            sid
        }
    };
    let dispatch = proto::AgentDispatch {
        id: guid("AD_"),
        agent_name: req.agent_name,
        room: req.room,
        metadata: req.metadata,
        restart_policy: req.restart_policy,
        deployment: req.deployment,
        attributes: req.attributes,
        ..Default::default()
    };
    state.dispatches.push((room_sid, dispatch.clone()));
    Ok(dispatch)
}

fn list_dispatch(
    shared: &Shared,
    req: proto::ListAgentDispatchRequest,
) -> proto::ListAgentDispatchResponse {
    let state = shared.lock();
    let Some(room) = state.rooms.iter().find(|r| r.name == req.room) else {
        return proto::ListAgentDispatchResponse::default();
    };
    let agent_dispatches = state
        .dispatches
        .iter()
        .filter(|(sid, d)| {
            *sid == room.sid && (req.dispatch_id.is_empty() || d.id == req.dispatch_id)
        })
        .map(|(_, d)| d.clone())
        .collect();
    proto::ListAgentDispatchResponse { agent_dispatches }
}

fn room_record(room: &proto::Room) -> RoomRecord {
    RoomRecord {
        name: room.name.clone(),
        sid: room.sid.clone(),
        metadata: room.metadata.clone(),
        empty_timeout: room.empty_timeout,
        departure_timeout: room.departure_timeout,
        max_participants: room.max_participants,
    }
}

/// Panics (in the test that made the typo) on a method this fake does not serve.
fn known_method(method: &str) -> &'static str {
    METHODS
        .iter()
        .copied()
        .find(|m| *m == method)
        .unwrap_or_else(|| panic!("FakeLiveKit serves {METHODS:?}, not {method:?}"))
}

/// Panics (in the test that made the typo) on a code Twirp does not define.
fn known_code(code: &str) -> &'static str {
    TWIRP_CODES
        .iter()
        .map(|(c, _)| *c)
        .find(|c| *c == code)
        .unwrap_or_else(|| panic!("{code:?} is not a Twirp error code"))
}

/// A LiveKit-style id: a prefix such as `RM_` and 12 random characters.
fn guid(prefix: &str) -> String {
    format!("{prefix}{}", random_hex(12))
}

fn random_hex(len: usize) -> String {
    let mut out = String::with_capacity(len + 32);
    while out.len() < len {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(len);
    out
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

//! Proves the fake LiveKit in tests/common/fake_livekit.rs is faithful: the
//! real livekit-api clients and webhook receiver talk to it, and raw HTTP checks
//! the Twirp details the clients hide.

mod common;

use std::future::Future;
use std::time::Duration;

use common::fake_livekit::{sign_webhook, FakeLiveKit, WEBHOOK_CONTENT_TYPE};
use livekit_api::access_token::{AccessToken, TokenVerifier, VideoGrants};
use livekit_api::services::agent_dispatch::AgentDispatchClient;
use livekit_api::services::room::{CreateRoomOptions, RoomClient};
use livekit_api::services::{ServerError, ServiceError};
use livekit_api::webhooks::{WebhookError, WebhookReceiver};
use livekit_protocol as proto;
use prost::Message as _;
use serde_json::Value;

/// Every test is bounded: a hang (say, a failover loop) fails instead.
async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), test)
        .await
        .expect("test timed out")
}

fn rooms(fake: &FakeLiveKit) -> RoomClient {
    RoomClient::with_api_key(fake.url(), fake.api_key(), fake.api_secret()).with_failover(false)
}

fn dispatcher(fake: &FakeLiveKit) -> AgentDispatchClient {
    AgentDispatchClient::with_api_key(fake.url(), fake.api_key(), fake.api_secret())
        .with_failover(false)
}

/// The Twirp code of a service error, panicking on any other kind of error.
fn twirp_code(err: &ServiceError) -> &str {
    match err {
        ServiceError::Twirp(ServerError::Twirp(e)) => &e.code,
        other => panic!("expected a Twirp error, got {other:?}"),
    }
}

fn dispatch_request(agent: &str, room: &str, metadata: &str) -> proto::CreateAgentDispatchRequest {
    proto::CreateAgentDispatchRequest {
        agent_name: agent.to_owned(),
        room: room.to_owned(),
        metadata: metadata.to_owned(),
        ..Default::default()
    }
}

fn token(fake: &FakeLiveKit, grants: VideoGrants) -> String {
    AccessToken::with_api_key(fake.api_key(), fake.api_secret())
        .with_grants(grants)
        .to_jwt()
        .unwrap()
}

/// An HS256 token with roomCreate that expired two minutes ago, signed by hand
/// since AccessToken only sets expiry in the future.
fn expired_token(fake: &FakeLiveKit) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": fake.api_key(),
        "nbf": now - 600,
        "exp": now - 120,
        "video": {"roomCreate": true},
    });
    let payload = b64(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{payload}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(fake.api_secret().as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    let signature = b64(&mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

#[tokio::test]
async fn create_room_is_recorded_and_answered() {
    bounded(async {
        let fake = FakeLiveKit::start().await;
        assert!(fake.url().starts_with("http://127.0.0.1:"));
        assert!(fake.api_key().starts_with("APIfake"));
        assert!(fake.api_secret().len() >= 32);

        let options = CreateRoomOptions {
            metadata: r#"{"reminder":"r1"}"#.to_owned(),
            empty_timeout: 60,
            ..Default::default()
        };
        let room = rooms(&fake).create_room("call-r1", options).await.unwrap();
        assert_eq!(room.name, "call-r1");
        assert_eq!(room.metadata, r#"{"reminder":"r1"}"#);
        assert_eq!(room.empty_timeout, 60);
        assert_eq!(room.departure_timeout, 20, "LiveKit's default");
        assert!(room.sid.starts_with("RM_"), "{}", room.sid);
        assert!(room.creation_time > 1_700_000_000);

        let record = fake.room("call-r1").expect("room recorded");
        assert_eq!(record.sid, room.sid);
        assert_eq!(record.metadata, room.metadata);
        assert_eq!(record.empty_timeout, 60);
        assert_eq!(fake.rooms(), vec![record]);
        assert_eq!(fake.calls("CreateRoom"), 1);
        assert_eq!(fake.auth_failures(), 0);

        let listed = rooms(&fake).list_rooms(vec![]).await.unwrap();
        assert_eq!(listed, vec![room]);
        let none = rooms(&fake).list_rooms(vec!["other".into()]).await.unwrap();
        assert!(none.is_empty());
    })
    .await
}

#[tokio::test]
async fn create_room_twice_answers_the_same_room() {
    bounded(async {
        let fake = FakeLiveKit::start().await;
        let client = rooms(&fake);
        let first_options = CreateRoomOptions {
            metadata: "first".into(),
            ..Default::default()
        };
        let first = client.create_room("same", first_options).await.unwrap();
        // No metadata: LiveKit keeps the room's.
        let second = client
            .create_room("same", Default::default())
            .await
            .unwrap();
        assert_eq!(second.sid, first.sid);
        assert_eq!(second.metadata, "first");
        // Non-empty metadata: LiveKit updates the existing room.
        let third_options = CreateRoomOptions {
            metadata: "third".into(),
            ..Default::default()
        };
        let third = client.create_room("same", third_options).await.unwrap();
        assert_eq!(third.sid, first.sid);
        assert_eq!(third.metadata, "third");

        assert_eq!(fake.rooms().len(), 1);
        assert_eq!(fake.calls("CreateRoom"), 3);
    })
    .await
}

#[tokio::test]
async fn create_dispatch_is_recorded_and_creates_the_room() {
    bounded(async {
        let fake = FakeLiveKit::start().await;
        let client = dispatcher(&fake);
        let dispatch = client
            .create_dispatch(dispatch_request("duecall-agent", "call-r2", r#"{"a":1}"#))
            .await
            .unwrap();
        assert!(dispatch.id.starts_with("AD_"), "{}", dispatch.id);
        assert_eq!(dispatch.agent_name, "duecall-agent");
        assert_eq!(dispatch.room, "call-r2");
        assert_eq!(dispatch.metadata, r#"{"a":1}"#);

        let records = fake.dispatches();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].id, dispatch.id);
        assert_eq!(records[0].room, "call-r2");
        assert_eq!(records[0].agent_name, "duecall-agent");
        assert_eq!(records[0].metadata, r#"{"a":1}"#);
        assert!(fake.room("call-r2").is_some(), "LiveKit creates the room");
        assert_eq!(fake.calls("CreateDispatch"), 1);

        // LiveKit accepts an empty agent name; the fake records it.
        client
            .create_dispatch(dispatch_request("", "call-r2", ""))
            .await
            .unwrap();
        assert_eq!(fake.dispatches()[1].agent_name, "");

        let listed = client.list_dispatch("call-r2").await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0], dispatch);
        let one = client
            .get_dispatch(dispatch.id.clone(), "call-r2")
            .await
            .unwrap();
        assert_eq!(one, Some(dispatch));
        assert_eq!(fake.calls("ListDispatch"), 2);

        // Deleting the room ends its dispatches; the history stays.
        rooms(&fake).delete_room("call-r2").await.unwrap();
        assert!(client.list_dispatch("call-r2").await.unwrap().is_empty());
        assert_eq!(fake.dispatches().len(), 2);
    })
    .await
}

#[tokio::test]
async fn bad_credentials_are_refused_as_livekit_does() {
    bounded(async {
        let fake = FakeLiveKit::start().await;

        // Wrong secret: livekit-server's middleware answers 401 in plain text,
        // which the real client cannot parse as a Twirp error.
        let wrong_secret = RoomClient::with_api_key(fake.url(), fake.api_key(), &"x".repeat(40))
            .with_failover(false);
        let err = wrong_secret
            .create_room("nope", Default::default())
            .await
            .unwrap_err();
        match &err {
            ServiceError::Twirp(ServerError::Request(e)) => assert!(e.is_decode(), "{e:?}"),
            other => panic!("expected an undecodable 401, got {other:?}"),
        }

        // Wrong API key: the same.
        let wrong_key =
            AgentDispatchClient::with_api_key(fake.url(), "APIother", fake.api_secret())
                .with_failover(false);
        let err = wrong_key
            .create_dispatch(dispatch_request("a", "nope", ""))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ServiceError::Twirp(ServerError::Request(_))),
            "{err:?}"
        );

        // Expired token (well past jsonwebtoken's 60 s leeway).
        let expired = expired_token(&fake);
        let err = RoomClient::with_token(fake.url(), &expired)
            .with_failover(false)
            .create_room("nope", Default::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ServiceError::Twirp(ServerError::Request(_))),
            "{err:?}"
        );

        assert!(fake.rooms().is_empty());
        assert!(fake.dispatches().is_empty());
        assert_eq!(fake.auth_failures(), 3);
        assert_eq!(fake.calls("CreateRoom"), 2);
        assert_eq!(fake.calls("CreateDispatch"), 1);
    })
    .await
}

#[tokio::test]
async fn missing_grants_are_twirp_unauthenticated() {
    bounded(async {
        let fake = FakeLiveKit::start().await;

        // A valid token without roomCreate.
        let list_only = token(
            &fake,
            VideoGrants {
                room_list: true,
                ..Default::default()
            },
        );
        let client = RoomClient::with_token(fake.url(), &list_only).with_failover(false);
        let err = client
            .create_room("nope", Default::default())
            .await
            .unwrap_err();
        assert_eq!(twirp_code(&err), "unauthenticated");
        let err = client.delete_room("nope").await.unwrap_err();
        assert_eq!(twirp_code(&err), "unauthenticated");
        assert!(client.list_rooms(vec![]).await.unwrap().is_empty());

        // roomAdmin for another room.
        let other_room = token(
            &fake,
            VideoGrants {
                room_admin: true,
                room: "other".into(),
                ..Default::default()
            },
        );
        let client = AgentDispatchClient::with_token(fake.url(), &other_room).with_failover(false);
        let err = client
            .create_dispatch(dispatch_request("a", "mine", ""))
            .await
            .unwrap_err();
        assert_eq!(twirp_code(&err), "unauthenticated");
        let err = client.list_dispatch("mine").await.unwrap_err();
        assert_eq!(twirp_code(&err), "unauthenticated");

        assert!(fake.rooms().is_empty());
        assert!(fake.dispatches().is_empty());
        assert_eq!(fake.auth_failures(), 4);
    })
    .await
}

#[tokio::test]
async fn injected_faults_reach_the_real_client() {
    bounded(async {
        let fake = FakeLiveKit::start().await;
        let client = rooms(&fake);

        fake.fail_next("CreateRoom", 1, "unavailable");
        fake.fail_next("CreateRoom", 1, "invalid_argument");
        let err = client
            .create_room("r", Default::default())
            .await
            .unwrap_err();
        assert_eq!(twirp_code(&err), "unavailable");
        assert!(fake.rooms().is_empty(), "a fault touches no state");
        let err = client
            .create_room("r", Default::default())
            .await
            .unwrap_err();
        assert_eq!(twirp_code(&err), "invalid_argument");
        client.create_room("r", Default::default()).await.unwrap();
        assert_eq!(fake.rooms().len(), 1);
        assert_eq!(fake.calls("CreateRoom"), 3);

        let dispatch = dispatcher(&fake);
        fake.fail_always("CreateDispatch", Some("resource_exhausted"));
        for _ in 0..2 {
            let err = dispatch
                .create_dispatch(dispatch_request("a", "r", ""))
                .await
                .unwrap_err();
            assert_eq!(twirp_code(&err), "resource_exhausted");
        }
        fake.fail_always("CreateDispatch", None);
        dispatch
            .create_dispatch(dispatch_request("a", "r", ""))
            .await
            .unwrap();
        assert_eq!(fake.dispatches().len(), 1);
        assert_eq!(fake.calls("CreateDispatch"), 3);

        // An injected `unauthenticated` is not an authentication failure.
        let failures = fake.auth_failures();
        fake.fail_next("ListRooms", 1, "unauthenticated");
        let err = client.list_rooms(vec![]).await.unwrap_err();
        assert_eq!(twirp_code(&err), "unauthenticated");
        assert_eq!(fake.auth_failures(), failures);

        // A fault is only spent by a request LiveKit would have served.
        fake.fail_next("DeleteRoom", 1, "internal");
        let wrong = RoomClient::with_api_key(fake.url(), fake.api_key(), &"y".repeat(40))
            .with_failover(false);
        assert!(wrong.delete_room("r").await.is_err());
        let err = client.delete_room("r").await.unwrap_err();
        assert_eq!(twirp_code(&err), "internal");
        client.delete_room("r").await.unwrap();
    })
    .await
}

#[tokio::test]
async fn a_delay_trips_the_client_timeout() {
    bounded(async {
        let fake = FakeLiveKit::start().await;
        fake.delay("CreateRoom", Duration::from_secs(3));
        let client = rooms(&fake).with_request_timeout(Duration::from_millis(200));
        let err = client
            .create_room("slow", Default::default())
            .await
            .unwrap_err();
        match &err {
            ServiceError::Twirp(ServerError::Request(e)) => assert!(e.is_timeout(), "{e:?}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        fake.delay("CreateRoom", Duration::ZERO);
        client
            .create_room("fast", Default::default())
            .await
            .unwrap();
        assert_eq!(fake.calls("CreateRoom"), 2);
    })
    .await
}

#[tokio::test]
async fn delete_room_and_unknown_room() {
    bounded(async {
        let fake = FakeLiveKit::start().await;
        let client = rooms(&fake);
        client.create_room("a", Default::default()).await.unwrap();
        client.create_room("b", Default::default()).await.unwrap();
        client.delete_room("a").await.unwrap();
        assert_eq!(fake.deleted_rooms(), vec!["a".to_owned()]);
        let names: Vec<String> = fake.rooms().into_iter().map(|r| r.name).collect();
        assert_eq!(names, vec!["b".to_owned()]);

        let err = client.delete_room("a").await.unwrap_err();
        assert_eq!(twirp_code(&err), "not_found");
        let err = client.delete_room("never").await.unwrap_err();
        assert_eq!(twirp_code(&err), "not_found");
        assert_eq!(fake.deleted_rooms().len(), 1);
        assert_eq!(fake.calls("DeleteRoom"), 3);

        // A room created again under the same name is a new room.
        let again = client.create_room("a", Default::default()).await.unwrap();
        assert_eq!(fake.room("a").unwrap().sid, again.sid);
    })
    .await
}

#[tokio::test]
async fn webhooks_are_signed_as_livekit_signs_them() {
    bounded(async {
        let fake = FakeLiveKit::start().await;
        let room = rooms(&fake)
            .create_room("call-r3", Default::default())
            .await
            .unwrap();
        let receiver = WebhookReceiver::new(TokenVerifier::with_api_key(
            fake.api_key(),
            fake.api_secret(),
        ));

        let (body, auth) = fake.webhook("room_finished", "call-r3");
        assert!(!auth.starts_with("Bearer "));
        let event = receiver.receive(&body, &auth).unwrap();
        assert_eq!(event.event, "room_finished");
        assert!(event.id.starts_with("EV_"));
        assert!(event.created_at > 1_700_000_000);
        let event_room = event.room.unwrap();
        assert_eq!(event_room.name, "call-r3");
        assert_eq!(event_room.sid, room.sid, "the fake's own room");

        // Proto JSON, as LiveKit's protojson: camelCase, int64 as strings.
        let json: Value = serde_json::from_str(&body).unwrap();
        assert!(json["createdAt"].is_string(), "{json}");
        assert_eq!(json["room"]["name"], "call-r3");

        // A room the fake does not know still gets a room with a sid.
        let (body, auth) = fake.webhook("room_started", "elsewhere");
        let event = receiver.receive(&body, &auth).unwrap();
        assert!(event.room.unwrap().sid.starts_with("RM_"));

        // Tampered body.
        let (body, auth) = fake.webhook("room_finished", "call-r3");
        let tampered = body.replace("call-r3", "call-r4");
        assert!(matches!(
            receiver.receive(&tampered, &auth),
            Err(WebhookError::InvalidSignature)
        ));

        // Wrong secret.
        let (body, auth) = fake.webhook_with(&"z".repeat(40), "room_finished", "call-r3");
        assert!(matches!(
            receiver.receive(&body, &auth),
            Err(WebhookError::InvalidAuth(_))
        ));

        // An arbitrary body signed with the free function.
        let body = r#"{"event":"participant_joined","room":{"name":"x"}}"#;
        let auth = sign_webhook(fake.api_key(), fake.api_secret(), body);
        assert_eq!(
            receiver.receive(body, &auth).unwrap().event,
            "participant_joined"
        );
        assert_eq!(WEBHOOK_CONTENT_TYPE, "application/webhook+json");
    })
    .await
}

/// A raw HTTP/1.1 answer, read off the socket so the checks see exactly the
/// bytes the fake sends (status line, headers, body).
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The Twirp error: `(status, code, body)`, checking it is JSON.
    fn twirp(&self) -> (u16, String, Value) {
        assert_eq!(self.header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_slice(&self.body).unwrap();
        let code = body["code"].as_str().unwrap().to_owned();
        (self.status, code, body)
    }
}

/// One request over a fresh connection, read to the end.
async fn raw(
    fake: &FakeLiveKit,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Raw {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = fake.url().strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();

    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(answer[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let raw = Raw {
        status,
        headers,
        body: answer[split + 4..].to_vec(),
    };
    assert!(raw.header("transfer-encoding").is_none(), "chunked answer");
    raw
}

/// The Twirp wire details, over raw HTTP.
#[tokio::test]
async fn twirp_on_the_wire() {
    bounded(async {
        let fake = FakeLiveKit::start().await;
        let create = "/twirp/livekit.RoomService/CreateRoom";
        let grants = VideoGrants {
            room_create: true,
            ..Default::default()
        };
        let good = format!("Bearer {}", token(&fake, grants));
        let request = proto::CreateRoomRequest {
            name: "wire".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let protobuf = ("content-type", "application/protobuf");
        let auth = ("authorization", good.as_str());

        // Success: protobuf in, protobuf out.
        let resp = raw(&fake, "POST", create, &[auth, protobuf], &request).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("application/protobuf"));
        let room = proto::Room::decode(resp.body.as_slice()).unwrap();
        assert_eq!(room.name, "wire");

        // Not POST.
        let resp = raw(&fake, "GET", create, &[auth], b"").await;
        let (status, code, body) = resp.twirp();
        assert_eq!((status, code.as_str()), (404, "bad_route"));
        assert_eq!(body["meta"]["twirp_invalid_route"], format!("GET {create}"));

        // Unknown method, unknown service, not Twirp at all.
        for path in [
            "/twirp/livekit.RoomService/UpdateRoomMetadata",
            "/twirp/livekit.Nothing/CreateRoom",
            "/",
        ] {
            let resp = raw(&fake, "POST", path, &[auth, protobuf], &request).await;
            let (status, code, _) = resp.twirp();
            assert_eq!((status, code.as_str()), (404, "bad_route"), "{path}");
        }

        // Unexpected Content-Type: Twirp routes on it, so bad_route.
        for content_type in ["text/plain", "application/json"] {
            let headers = [auth, ("content-type", content_type)];
            let resp = raw(&fake, "POST", create, &headers, &request).await;
            let (status, code, _) = resp.twirp();
            assert_eq!((status, code.as_str()), (404, "bad_route"));
        }

        // A body that is not a CreateRoomRequest.
        let resp = raw(
            &fake,
            "POST",
            create,
            &[auth, protobuf],
            &[0xff, 0xff, 0xff],
        )
        .await;
        let (status, code, _) = resp.twirp();
        assert_eq!((status, code.as_str()), (400, "malformed"));

        // No Authorization header: no grants, so Twirp unauthenticated.
        let resp = raw(&fake, "POST", create, &[protobuf], &request).await;
        let (status, code, body) = resp.twirp();
        assert_eq!((status, code.as_str()), (401, "unauthenticated"));
        assert_eq!(body["msg"], "permissions denied");

        // Not a Bearer header, or a garbage token: a plain-text 401, ahead of
        // routing.
        for bad in ["Basic abc", "Bearer not-a-jwt"] {
            let resp = raw(&fake, "POST", "/anything", &[("authorization", bad)], b"").await;
            assert_eq!(resp.status, 401);
            assert!(serde_json::from_slice::<Value>(&resp.body).is_err());
            assert!(!resp.body.is_empty());
        }

        // Injected codes carry Twirp's statuses.
        for (injected, expected) in [
            ("unavailable", 503),
            ("resource_exhausted", 429),
            ("deadline_exceeded", 408),
            ("already_exists", 409),
            ("failed_precondition", 412),
            ("unimplemented", 501),
            ("permission_denied", 403),
        ] {
            fake.fail_next("CreateRoom", 1, injected);
            let resp = raw(&fake, "POST", create, &[auth, protobuf], &request).await;
            let (status, code, _) = resp.twirp();
            assert_eq!((status, code.as_str()), (expected, injected));
        }

        assert_eq!(fake.rooms().len(), 1);
        assert_eq!(fake.auth_failures(), 3);
        // POSTs to the CreateRoom path: 1 served, 2 content types, 1
        // malformed, 1 without auth, 7 injected; the GET does not count.
        assert_eq!(fake.calls("CreateRoom"), 12);
    })
    .await
}

#[test]
#[should_panic(expected = "not a Twirp error code")]
fn unknown_codes_are_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeLiveKit::start());
    fake.fail_next("CreateRoom", 1, "oops");
}

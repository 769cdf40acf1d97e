//! The authenticator's rules, without HTTP: logins, display tokens, cookies, the cache,
//! reloads, throttling.

use super::*;
use crate::password;
use actix_web::http::header;
use actix_web::test::TestRequest;
use base64ct::{Base64, Encoding};

fn settings() -> AuthSettings {
    AuthSettings {
        realm: "r".into(),
        login_cache: Duration::from_secs(60),
        login_idle: Duration::from_secs(60),
        login_max: Duration::from_secs(600),
        throttle: crate::config::auth::ThrottleSettings {
            max_failures: 3,
            failure_window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
        },
        users: vec![UserSpec {
            name: "alice".into(),
            password_hash: password::hash("wonderland").unwrap(),
            roles: [UserRole::Agent].into(),
            contact_center: "cc".into(),
            features: ["api-voice".to_string()].into(),
        }],
        displays: Vec::new(),
        contact_centers: [("cc".to_string(), ["api-voice".to_string()].into())].into(),
        ldap: None,
    }
}

fn basic(name: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        Base64::encode_string(format!("{name}:{secret}").as_bytes())
    )
}

/// A request with `Authorization: Basic` for `name` and `secret`.
fn with_basic(name: &str, secret: &str) -> HttpRequest {
    TestRequest::default()
        .insert_header((header::AUTHORIZATION, basic(name, secret)))
        .to_http_request()
}

/// The login token a Basic login opens.
async fn token_of(auth: &Authenticator, login: &HttpRequest) -> String {
    let cookie = auth.authenticate(login).await.unwrap().1;
    token_in(&cookie.expect("a Basic login opens a cookie login"))
}

/// The token a cookie login's `Set-Cookie` gives its client.
fn token_in(cookie: &LoginCookie) -> String {
    let set_cookie = cookie.header(false).to_str().unwrap();
    let pair = set_cookie.split(';').next().unwrap();
    let token = pair.strip_prefix(&format!("{LOGIN_COOKIE}=")).unwrap();
    token.to_string()
}

/// A request carrying the login cookie `token`.
fn with_cookie(token: &str) -> HttpRequest {
    TestRequest::default()
        .cookie(actix_web::cookie::Cookie::new(
            LOGIN_COOKIE,
            token.to_string(),
        ))
        .to_http_request()
}

#[actix_rt::test]
async fn basic_login_then_cookie() {
    let auth = Authenticator::new(&settings(), Default::default());
    let req = with_basic("alice", "wonderland");
    let (caller, token) = auth.authenticate(&req).await.unwrap();
    assert_eq!(&*caller.user, "alice");
    assert!(caller.sees("api-voice") && !caller.sees("api-multimedia"));
    let token = token_in(&token.expect("a Basic login opens a cookie login"));
    assert_eq!(token.len(), 64);
    let req = with_cookie(&token);
    let (again, new_token) = auth.authenticate(&req).await.unwrap();
    assert_eq!(again, caller);
    assert!(new_token.is_none());
    assert_eq!(lock(&auth.logins).len(), 1, "the login is cached");
    assert!(
        lock(&auth.logins)
            .keys()
            .all(|k| !k.windows(10).any(|w| w == b"wonderland"))
    );
}

#[actix_rt::test]
async fn refusals() {
    let auth = Authenticator::new(&settings(), Default::default());
    let with = |value: String| {
        TestRequest::default()
            .insert_header((header::AUTHORIZATION, value))
            .to_http_request()
    };
    assert_eq!(
        auth.authenticate(&TestRequest::default().to_http_request())
            .await
            .unwrap_err(),
        AuthError::Missing
    );
    assert_eq!(
        auth.authenticate(&with_basic("alice", "looking-glass"))
            .await
            .unwrap_err(),
        AuthError::Rejected
    );
    assert_eq!(
        auth.authenticate(&with_basic("bob", "wonderland"))
            .await
            .unwrap_err(),
        AuthError::Rejected
    );
    assert_eq!(
        auth.authenticate(&with("Bearer x".into()))
            .await
            .unwrap_err(),
        AuthError::NotOurToken
    );
    assert_eq!(
        auth.authenticate(&with("Digest x".into()))
            .await
            .unwrap_err(),
        AuthError::Missing
    );
    let stale = with_cookie("nope");
    assert_eq!(
        auth.authenticate(&stale).await.unwrap_err(),
        AuthError::Expired
    );
    assert!(lock(&auth.logins).is_empty(), "failures are not cached");
}

#[actix_rt::test]
async fn a_reload_ends_the_cookie_logins_of_removed_users() {
    let auth = Authenticator::new(&settings(), Default::default());
    let login = with_basic("alice", "wonderland");
    let token = token_of(&auth, &login).await;
    let by_cookie = || with_cookie(&token);
    let revoked = auth.replace_users(&settings().users[..0]);
    assert_eq!(revoked, [Arc::from("alice")].into());
    assert!(auth.replace_users(&[]).is_empty(), "nobody left to revoke");
    assert_eq!(
        auth.authenticate(&by_cookie()).await.unwrap_err(),
        AuthError::Expired
    );
    assert_eq!(
        auth.authenticate(&login).await.unwrap_err(),
        AuthError::Rejected,
        "no cached login survives"
    );
}

#[actix_rt::test]
async fn a_verification_that_ends_after_a_reload_removed_its_user_leaves_nothing() {
    let auth = Authenticator::new(&settings(), Default::default());
    // The user as a login saw it before the reload...
    let before = auth.users.read().unwrap().get("alice").cloned();
    auth.replace_users(&[]);
    // ...finishes its Argon2 after it.
    let key = auth.cache_key("alice", "wonderland");
    let verified = auth.verify(before.clone(), &key, "wonderland".into()).await;
    assert!(matches!(verified, Err(AuthError::Rejected)));
    assert!(lock(&auth.logins).is_empty(), "nothing cached");
    assert!(
        auth.open_login(Principal::User(before.unwrap())).is_none(),
        "no cookie login opened"
    );
    assert!(lock(&auth.logins_by_cookie).len() == 0);
}

#[actix_rt::test]
async fn a_login_verified_before_a_reload_that_kept_its_user_opens_its_cookie() {
    let configured = settings();
    let auth = Authenticator::new(&configured, Default::default());
    let before = auth.users.read().unwrap().get("alice").cloned().unwrap();
    // A reload with the same users replaces their values, not what they are.
    assert!(auth.replace_users(&configured.users).is_empty());
    assert!(
        auth.open_login(Principal::User(before)).is_some(),
        "the login is the same user's"
    );
}

#[actix_rt::test]
async fn repeated_basic_logins_share_one_cookie() {
    let auth = Authenticator::new(&settings(), Default::default());
    let login = with_basic("alice", "wonderland");
    let first = token_of(&auth, &login).await;
    for _ in 0..5 {
        assert_eq!(token_of(&auth, &login).await, first);
    }
    assert_eq!(lock(&auth.logins_by_cookie).len(), 1);
    assert!(auth.authenticate(&with_cookie(&first)).await.is_ok());
}

#[actix_rt::test]
async fn cookie_logins_per_user_are_bounded() {
    let auth = Authenticator::new(&settings(), Default::default());
    let login = with_basic("alice", "wonderland");
    let mut tokens = Vec::new();
    for _ in 0..logins::LOGINS_PER_USER + 5 {
        tokens.push(token_of(&auth, &login).await);
        // A new login each time, as after the login cache expired.
        lock(&auth.logins).clear();
    }
    assert_eq!(lock(&auth.logins_by_cookie).len(), logins::LOGINS_PER_USER);
    let oldest = with_cookie(&tokens[0]);
    assert_eq!(
        auth.authenticate(&oldest).await.unwrap_err(),
        AuthError::Expired,
        "the oldest cookie login ended"
    );
    let newest = with_cookie(tokens.last().unwrap());
    assert!(auth.authenticate(&newest).await.is_ok());
}

#[actix_rt::test]
async fn concurrent_logins_with_the_same_credentials_verify_once() {
    let auth = Arc::new(Authenticator::new(&settings(), Default::default()));
    let logins: Vec<_> = (0..8)
        .map(|_| {
            let auth = auth.clone();
            actix_rt::spawn(async move {
                auth.authenticate(&with_basic("alice", "wonderland"))
                    .await
                    .map(|(caller, _)| caller.user)
            })
        })
        .collect();
    for login in logins {
        assert_eq!(&*login.await.unwrap().unwrap(), "alice");
    }
    assert_eq!(auth.metrics.auth.password_verifications.get(), 1);
    assert!(lock(&auth.verifying).is_empty(), "no gate is left behind");
}

#[actix_rt::test]
async fn an_abandoned_login_leaves_no_gate() {
    let auth = Authenticator::new(&settings(), Default::default());
    let request = with_basic("alice", "wrong");
    let login = auth.authenticate(&request);
    // Polled once (the verification starts on the blocking pool), then dropped.
    assert!(
        tokio::time::timeout(Duration::from_micros(1), login)
            .await
            .is_err()
    );
    assert!(lock(&auth.verifying).is_empty());
}

#[actix_rt::test]
async fn failures_lock_out_their_address_only() {
    let auth = Authenticator::new(&settings(), Default::default());
    let from = |ip: &str, secret: &str| {
        TestRequest::default()
            .peer_addr(format!("{ip}:40000").parse().unwrap())
            .insert_header((header::AUTHORIZATION, basic("alice", secret)))
            .to_http_request()
    };
    for _ in 0..3 {
        assert_eq!(
            auth.authenticate(&from("192.0.2.1", "guess"))
                .await
                .unwrap_err(),
            AuthError::Rejected
        );
    }
    let verified = auth.metrics.auth.password_verifications.get();
    assert!(matches!(
        auth.authenticate(&from("192.0.2.1", "wonderland")).await,
        Err(AuthError::Throttled {
            retry_after_secs: 60 | 61
        })
    ));
    assert_eq!(
        auth.metrics.auth.password_verifications.get(),
        verified,
        "refused before Argon2"
    );
    assert!(
        auth.authenticate(&from("192.0.2.2", "wonderland"))
            .await
            .is_ok()
    );
    assert!(
        auth.authenticate(&from("192.0.2.1", "wonderland"))
            .await
            .is_ok(),
        "a login verified recently passes"
    );
}

#[actix_rt::test]
async fn cookie_logins_expire_when_idle_and_at_their_absolute_limit() {
    let idle = AuthSettings {
        login_idle: Duration::from_millis(100),
        ..settings()
    };
    let auth = Authenticator::new(&idle, Default::default());
    let login = with_basic("alice", "wonderland");
    let token = token_of(&auth, &login).await;
    assert!(auth.authenticate(&with_cookie(&token)).await.is_ok());
    // Unused for longer than the idle limit.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        auth.authenticate(&with_cookie(&token)).await.unwrap_err(),
        AuthError::Expired
    );

    let short = AuthSettings {
        login_max: Duration::from_millis(300),
        ..settings()
    };
    let auth = Authenticator::new(&short, Default::default());
    let started = Instant::now();
    let token = token_of(&auth, &login).await;
    // Used all the time, it still ends at the absolute limit.
    loop {
        match auth.authenticate(&with_cookie(&token)).await {
            Ok(_) => assert!(started.elapsed() < Duration::from_secs(5), "never expired"),
            Err(e) => {
                assert_eq!(e, AuthError::Expired);
                assert!(started.elapsed() >= Duration::from_millis(300));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn the_decoy_is_a_real_hash() {
    assert!(password::is_hash(DECOY_HASH));
}

/// The settings of [`settings`] with a display "lobby" of center "cc" holding `token`.
fn with_display(token: &DisplayToken) -> AuthSettings {
    AuthSettings {
        displays: vec![lobby(token, "cc")],
        ldap: None,
        ..settings()
    }
}

fn lobby(token: &DisplayToken, cc: &str) -> crate::config::auth::DisplaySpec {
    crate::config::auth::DisplaySpec {
        name: "lobby".into(),
        contact_center: cc.into(),
        features: ["api-voice".to_string()].into(),
        token_sha256: displays::sha256(token.token()),
    }
}

/// A request from `ip` with `Authorization: Bearer token`.
fn with_bearer(ip: &str, token: &str) -> HttpRequest {
    TestRequest::default()
        .peer_addr(format!("{ip}:40000").parse().unwrap())
        .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
        .to_http_request()
}

#[actix_rt::test]
async fn a_display_token_logs_in_as_its_display_and_shares_one_cookie() {
    let token = DisplayToken::generate();
    let auth = Authenticator::new(&with_display(&token), Default::default());
    let login = with_bearer("192.0.2.1", token.token());
    let (caller, cookie) = auth.authenticate(&login).await.unwrap();
    assert_eq!(&*caller.user, "display:lobby");
    assert_eq!(*caller.roles, [UserRole::Agent].into());
    assert!(caller.sees("api-voice"));
    let first = token_in(&cookie.expect("a Bearer login opens a cookie login"));
    for _ in 0..5 {
        assert_eq!(token_of(&auth, &login).await, first);
    }
    assert_eq!(lock(&auth.logins_by_cookie).len(), 1);
    let (by_cookie, none) = auth.authenticate(&with_cookie(&first)).await.unwrap();
    assert_eq!((by_cookie, none.is_none()), (caller, true));
    assert_eq!(auth.metrics.auth.display_logins.get(), 6);
    assert_eq!(auth.metrics.auth.password_verifications.get(), 0);
}

#[actix_rt::test]
async fn wrong_display_tokens_are_throttled_like_passwords() {
    let token = DisplayToken::generate();
    let auth = Authenticator::new(&with_display(&token), Default::default());
    for _ in 0..3 {
        assert_eq!(
            auth.authenticate(&with_bearer("192.0.2.1", "swd_guess"))
                .await
                .unwrap_err(),
            AuthError::UnknownDisplay
        );
    }
    assert!(matches!(
        auth.authenticate(&with_bearer("192.0.2.1", token.token()))
            .await,
        Err(AuthError::Throttled { .. })
    ));
    assert!(
        auth.authenticate(&with_bearer("192.0.2.2", token.token()))
            .await
            .is_ok()
    );
    assert_eq!(auth.metrics.auth.display_login_failures.get(), 3);
    assert_eq!(auth.metrics.auth.login_lockouts.get(), 1);
    // Another system's Bearer token guesses nothing: it is not counted.
    for _ in 0..5 {
        assert_eq!(
            auth.authenticate(&with_bearer("192.0.2.3", "eyJhbGciOi"))
                .await
                .unwrap_err(),
            AuthError::NotOurToken
        );
    }
    assert!(
        auth.authenticate(&with_bearer("192.0.2.3", token.token()))
            .await
            .is_ok()
    );
}

#[actix_rt::test]
async fn a_reload_revokes_a_changed_display_and_keeps_the_rest() {
    let token = DisplayToken::generate();
    let configured = with_display(&token);
    let auth = Authenticator::new(&configured, Default::default());
    let alice = token_of(&auth, &with_basic("alice", "wonderland")).await;
    let lobby_cookie = token_of(&auth, &with_bearer("192.0.2.1", token.token())).await;
    assert!(auth.replace_displays(&configured.displays).is_empty());
    assert!(auth.replace_users(&configured.users).is_empty());
    assert!(auth.authenticate(&with_cookie(&lobby_cookie)).await.is_ok());
    assert_eq!(
        token_of(&auth, &with_bearer("192.0.2.1", token.token())).await,
        lobby_cookie,
        "an unchanged display keeps its cookie login"
    );

    let moved = auth.replace_displays(&[lobby(&token, "elsewhere")]);
    assert_eq!(moved, ["display:lobby".into()].into());
    assert_eq!(
        auth.authenticate(&with_cookie(&lobby_cookie))
            .await
            .unwrap_err(),
        AuthError::Expired
    );
    assert!(auth.authenticate(&with_cookie(&alice)).await.is_ok());

    assert_eq!(auth.replace_displays(&[]), ["display:lobby".into()].into());
    assert_eq!(
        auth.authenticate(&with_bearer("192.0.2.1", token.token()))
            .await
            .unwrap_err(),
        AuthError::UnknownDisplay
    );
}

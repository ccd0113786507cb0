//! CORS, which the local gateway answers itself (API Gateway does it when deployed): the
//! same headers and methods as the template allows.

mod common;

use common::Client;

#[tokio::test]
async fn preflights_and_answers_carry_the_deployed_cors_policy() {
    let c = Client::start(local_gateway::Options::ephemeral()).await;
    let preflight = c
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/businesses", c.base))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let header = |name: &str| {
        preflight
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    assert_eq!(header("access-control-allow-origin"), "*");
    let allowed: Vec<String> = header("access-control-allow-headers")
        .split(',')
        .map(|h| h.trim().to_owned())
        .collect();
    assert_eq!(allowed, adsync::http::CORS_ALLOWED_HEADERS);
    let methods: Vec<String> = header("access-control-allow-methods")
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .collect();
    assert_eq!(methods, adsync::http::CORS_ALLOWED_METHODS);
    assert_eq!(
        header("access-control-max-age"),
        adsync::http::CORS_MAX_AGE_SECS.to_string()
    );

    let answer = c
        .http
        .get(format!("{}/businesses", c.base))
        .header("origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        401,
        "no token: refused, with CORS so the page can read it"
    );
    assert_eq!(answer.headers()["access-control-allow-origin"], "*");
}

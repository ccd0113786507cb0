//! `events/*.json` are the sample events of `sam local invoke`: each one runs here through its
//! function's handler, so they cannot go stale; `template.yaml` routes exactly the route
//! table the code (and the local gateway) serves; and the n8n workflow calls routes of that
//! table, as a service.

use std::collections::BTreeMap;

use adsync::http::Route;
use adsync::ids::{BusinessId, ProductId, Uid};
use adsync::store::DocPath;
use adsync::ws::WsRoute;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use integration_tests::TestApp;
use serde_json::{Value, json};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Every sample event, by file stem.
fn sample_events() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(format!("{ROOT}/events")).expect("events/") {
        let path = entry.expect("entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        if path.extension().is_some_and(|e| e == "json") && stem != "env" {
            let text = std::fs::read_to_string(&path).expect("readable");
            let event = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
            out.insert(stem, event);
        }
    }
    out
}

enum Function {
    Http(Route),
    Ws(WsRoute),
    /// The scheduled sweeper (any EventBridge event starts a sweep).
    Sweep,
}

/// The function a sample is for: the longest function name its file stem starts with.
fn function_of(stem: &str) -> Option<Function> {
    let http = Route::ALL
        .iter()
        .map(|r| (r.function(), Function::Http(*r)));
    let ws = WsRoute::ALL
        .iter()
        .map(|r| (r.function(), Function::Ws(*r)));
    let sweep = std::iter::once(("sweep-stuck", Function::Sweep));
    http.chain(ws)
        .chain(sweep)
        .filter(|(name, _)| stem == *name || stem.starts_with(&format!("{name}-")))
        .max_by_key(|(name, _)| name.len())
        .map(|(_, f)| f)
}

#[tokio::test]
async fn every_sample_event_runs_through_its_handler() {
    let events = sample_events();
    let service_key = events["broadcast"]["headers"]["x-service-key"]
        .as_str()
        .expect("the broadcast sample carries a service key")
        .to_owned();
    // The samples carry emulator tokens for project demo-ads, as `sam local invoke` uses them;
    // images go to the Cloud Storage stand-in, ads come from the offline provider.
    let google = integration_tests::stand_ins::Google::start().await;
    let mut settings = google.settings();
    for (k, v) in [
        ("AUTH_MODE", "emulator"),
        ("FIREBASE_PROJECT_ID", "demo-ads"),
        ("SERVICE_KEY", service_key.as_str()),
        ("AI_PROVIDER", "offline"),
    ] {
        settings.push((k.to_owned(), v.to_owned()));
    }
    let t = TestApp::spawn_with(&settings).await;
    t.reset_firestore("demo-ads").await;

    // The documents the samples address.
    let update = &events["products-update"]["pathParameters"];
    let alice = Uid::parse("alice").unwrap();
    let business = BusinessId::parse(update["businessId"].as_str().unwrap()).unwrap();
    let product = ProductId::parse(update["productId"].as_str().unwrap()).unwrap();
    let doc = |v: Value| v.as_object().cloned().unwrap();
    t.app
        .store()
            .unwrap()
        .create(
            &DocPath::business(&alice, &business),
            doc(json!({"id": business, "name": "Sample", "createdAt": "2026-11-24T00:00:00.000Z", "updatedAt": "2026-11-24T00:00:00.000Z"})),
        )
        .await
        .unwrap();
    t.app
        .store()
            .unwrap()
        .create(
            &DocPath::product(&alice, &business, &product),
            doc(json!({"id": product, "businessId": business, "name": "Sample", "status": "draft", "createdAt": "2026-11-24T00:00:00.000Z", "updatedAt": "2026-11-24T00:00:00.000Z"})),
        )
        .await
        .unwrap();

    // Login first (it creates the profile users-update patches), disconnect and delete last.
    let order = |stem: &str| match stem {
        "auth-login" => 0,
        s if s.starts_with("ws-connect") => 1,
        s if s.starts_with("ws-default") => 2,
        "products-delete" => 4,
        s if s.starts_with("ws-disconnect") => 5,
        _ => 3,
    };
    let mut stems: Vec<&String> = events.keys().collect();
    stems.sort_by_key(|s| (order(s), (*s).clone()));

    let mut seen_http = Vec::new();
    let mut seen_ws = Vec::new();
    let mut swept = false;
    for stem in stems {
        let event = &events[stem];
        match function_of(stem)
            .unwrap_or_else(|| panic!("events/{stem}.json: no function of that name"))
        {
            Function::Http(route) => {
                let (method, template) = route.key();
                assert_eq!(
                    event["routeKey"],
                    format!("{method} {template}"),
                    "events/{stem}.json routes elsewhere"
                );
                let request = lambda_http::request::from_str(&event.to_string())
                    .unwrap_or_else(|e| panic!("events/{stem}.json is not an HTTP API event: {e}"));
                let response = adsync::lambda::serve_http(&t.app, route, request).await;
                let status = response.status();
                assert!(
                    status.is_success(),
                    "events/{stem}.json answered {status}: {:?}",
                    response.body()
                );
                seen_http.push(route);
            }
            Function::Ws(route) => {
                let request: ApiGatewayWebsocketProxyRequest =
                    serde_json::from_value(event.clone()).unwrap_or_else(|e| {
                        panic!("events/{stem}.json is not a WebSocket event: {e}")
                    });
                assert_eq!(
                    request.request_context.route_key.as_deref(),
                    Some(route.key())
                );
                let invocation =
                    lambda_runtime::LambdaEvent::new(request, lambda_runtime::Context::default());
                let response = adsync::lambda::serve_ws(&t.app, route, invocation).await;
                assert_eq!(
                    response.status_code, 200,
                    "events/{stem}.json: {:?}",
                    response.body
                );
                seen_ws.push(route);
            }
            Function::Sweep => {
                assert_eq!(event["detail-type"], "Scheduled Event");
                adsync::generate::sweep_stuck(&t.app)
                    .await
                    .unwrap_or_else(|e| panic!("events/{stem}.json: {e}"));
                swept = true;
            }
        }
    }
    assert!(swept, "no sample event for sweep-stuck");
    for route in Route::ALL {
        assert!(
            seen_http.contains(&route),
            "no sample event for {}",
            route.function()
        );
    }
    for route in WsRoute::ALL {
        assert!(
            seen_ws.contains(&route),
            "no sample event for {}",
            route.function()
        );
    }
    // The WebSocket samples really reached the connection: ping, resume and auth answered.
    let frames = t.management.frames("Xk3pQcQ2IAMCJ8w=");
    let names: Vec<_> = frames.iter().filter_map(|f| f["event"].as_str()).collect();
    for expected in ["pong", "resume:done", "auth:ok"] {
        assert!(names.contains(&expected), "no {expected} in {names:?}");
    }
}

/// `(method, path, binary)` of every HTTP API event in `template.yaml`, read as text: a
/// layout change that hides a route makes the count check below fail, not pass.
fn template_routes() -> Vec<(String, String, String)> {
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).expect("template.yaml");
    let mut routes = Vec::new();
    let mut binary = String::new();
    let mut method = String::new();
    for line in template.lines().map(str::trim) {
        if let Some(b) = line.strip_prefix("Binary:") {
            binary = b.trim().to_owned();
        } else if let Some(m) = line.strip_prefix("Method:") {
            method = m.trim().to_owned();
        } else if let Some(p) = line.strip_prefix("Path:") {
            routes.push((method.clone(), p.trim().to_owned(), binary.clone()));
        }
    }
    routes.sort();
    routes
}

#[test]
fn the_template_routes_exactly_the_route_table() {
    let mut expected: Vec<(String, String, String)> = Route::ALL
        .iter()
        .map(|r| {
            let (method, path) = r.key();
            (method.to_string(), path.to_owned(), r.function().to_owned())
        })
        .collect();
    expected.sort();
    assert_eq!(template_routes(), expected);

    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    for route in WsRoute::ALL {
        assert!(
            template.contains(&format!("Binary: {}", route.function())),
            "{}",
            route.function()
        );
        assert!(
            template.contains(&format!("RouteKey: {}", route.key())),
            "{}",
            route.key()
        );
    }
    // Every function crate is in the template, and every binary in the template is a crate.
    let crates: Vec<String> = std::fs::read_dir(format!("{ROOT}/functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in &crates {
        assert!(
            template.contains(&format!("Binary: {name}")),
            "functions/{name} is not in template.yaml"
        );
    }
    assert_eq!(template.matches("Binary: ").count(), crates.len());
    assert!(
        !template.contains("AUTH_MODE: emulator"),
        "emulator auth must never be deployed"
    );
}

/// The names of the environment variables each function's own `Environment` block sets in
/// `template.yaml` (the Globals apart).
fn template_function_variables() -> BTreeMap<String, Vec<String>> {
    integration_tests::template::environment(&integration_tests::template::text())
        .into_iter()
        .filter(|(owner, _)| !owner.is_empty())
        .map(|(owner, vars)| (owner, vars.into_iter().map(|(name, _)| name).collect()))
        .collect()
}

/// Each function's resource in `template.yaml`, by its binary's name.
fn template_function_blocks() -> BTreeMap<String, String> {
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).expect("template.yaml");
    let mut blocks = BTreeMap::new();
    let mut block = String::new();
    let mut flush = |block: &str| {
        if let Some(binary) = block.lines().find_map(|l| l.trim().strip_prefix("Binary:")) {
            blocks.insert(binary.trim().to_owned(), block.to_owned());
        }
    };
    for line in template.lines() {
        let resource = line.len() > 2 && line.starts_with("  ") && !line[2..].starts_with(' ');
        if resource {
            flush(&block);
            block.clear();
        }
        block.push_str(line);
        block.push('\n');
    }
    flush(&block);
    blocks
}

#[test]
fn each_function_names_only_the_secrets_it_uses_and_may_read_only_those() {
    use adsync::function::{Function, Need};
    let variables = template_function_variables();
    let blocks = template_function_blocks();
    for function in Function::all() {
        let needs = function.needs();
        let name = function.name();
        let has = |var: &str| variables[name].iter().any(|v| v == var);
        let may_read = |policy: &str| blocks[name].contains(&format!("!Ref {policy}"));
        let google = needs.documents || needs.images != Need::No;
        assert_eq!(has("GOOGLE_SERVICE_ACCOUNT_SECRET_ID"), google, "{name}");
        assert_eq!(
            may_read("GoogleServiceAccountSecretPolicy"),
            google,
            "{name}"
        );
        assert_eq!(has("SERVICE_KEY_SECRET_ID"), needs.service_key, "{name}");
        assert_eq!(
            may_read("ServiceKeySecretPolicy"),
            needs.service_key,
            "{name}"
        );
        let ai = needs.ai != Need::No;
        assert_eq!(has("AI_API_KEY_SECRET_ID"), ai, "{name}");
        assert_eq!(may_read("AiApiKeySecretPolicy"), ai, "{name}");
        // No value of a secret in a function's configuration: only names.
        assert!(!blocks[name].contains("resolve:secretsmanager"), "{name}");
    }
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    assert!(
        !template.contains("{{resolve:secretsmanager"),
        "a dynamic reference puts the value in plain text in the configuration"
    );
}

/// The values of a flow list of `template.yaml` such as `AllowHeaders: [A, B]`.
fn template_list(key: &str) -> Vec<String> {
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).expect("template.yaml");
    let line = template
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in template.yaml"));
    line.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|v| v.trim().to_owned())
        .collect()
}

#[test]
fn api_gateway_allows_the_cors_headers_and_methods_the_local_gateway_does() {
    let headers: Vec<String> = template_list("AllowHeaders")
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    assert_eq!(headers, adsync::http::CORS_ALLOWED_HEADERS);
    assert_eq!(
        template_list("AllowMethods"),
        adsync::http::CORS_ALLOWED_METHODS
    );
    assert_eq!(
        template_list("MaxAge"),
        [adsync::http::CORS_MAX_AGE_SECS.to_string()]
    );
    let exposed: Vec<String> = template_list("ExposeHeaders")
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    assert_eq!(exposed, adsync::http::CORS_EXPOSED_HEADERS);
    // The service key and its X-On-Behalf-Of are for n8n, server to server: no page may
    // send them.
    for service_header in ["x-service-key", "x-on-behalf-of"] {
        assert!(!headers.iter().any(|h| h == service_header), "{headers:?}");
    }
}

/// `Timeout:` of each function in `template.yaml` (the Globals value where it has none).
fn template_timeouts() -> BTreeMap<String, u64> {
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).expect("template.yaml");
    let mut global = None;
    let mut timeouts = BTreeMap::new();
    let mut binary: Option<String> = None;
    for line in template.lines() {
        let trimmed = line.trim();
        if let Some(b) = trimmed.strip_prefix("Binary:") {
            binary = Some(b.trim().to_owned());
        } else if let Some(t) = trimmed.strip_prefix("Timeout:") {
            let secs: u64 = t.trim().parse().expect("a whole number of seconds");
            match &binary {
                Some(b) => {
                    timeouts.insert(b.clone(), secs);
                }
                None => global = Some(secs),
            }
        }
    }
    let global = global.expect("Globals.Function.Timeout");
    let crates = std::fs::read_dir(format!("{ROOT}/functions")).expect("functions/");
    for entry in crates {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        timeouts.entry(name).or_insert(global);
    }
    timeouts
}

#[test]
fn the_functions_deadlines_are_the_template_timeouts_and_under_the_writer_lease() {
    let timeouts = template_timeouts();
    for route in Route::ALL {
        assert_eq!(
            timeouts[route.function()],
            route.timeout().as_secs(),
            "{}",
            route.function()
        );
    }
    for route in WsRoute::ALL {
        assert_eq!(timeouts[route.function()], route.timeout().as_secs());
    }
    // A seq or a generation older than the lease is taken for a dead writer's: no function
    // may run that long.
    let longest = timeouts.values().max().copied().unwrap_or_default();
    let lease = adsync::config::Timing::default().writer_lease.as_secs();
    assert!(
        longest + 10 <= lease,
        "{longest} s against a lease of {lease} s"
    );
    assert!(adsync::config::MIN_WRITER_LEASE.as_secs() >= longest + 10);
}

/// The backend path of an HTTP Request node's URL expression, with its `{{ }}` expressions
/// replaced by sample ids: `={{ $('Config').first().json.backendUrl }}/products/update/{{ ... }}/{{ ... }}`
/// becomes `/products/update/id/id`.
fn backend_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("={{ $('Config').first().json.backendUrl }}")?;
    let mut out = String::new();
    let mut rest = rest;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        out.push_str("id");
        let end = rest[start..].find("}}")? + start + 2;
        rest = &rest[end..];
    }
    out.push_str(rest);
    Some(out)
}

fn n8n_workflow() -> Value {
    let text = std::fs::read_to_string(format!("{ROOT}/n8n/generate-ad-image.workflow.json"))
        .expect("the workflow file");
    serde_json::from_str(&text).expect("valid JSON")
}

/// The nodes each output of `name` leads to (`main[i]`), as the connections say.
fn outputs<'a>(workflow: &'a Value, name: &str) -> Vec<Vec<&'a str>> {
    workflow["connections"][name]["main"]
        .as_array()
        .map(|outs| {
            outs.iter()
                .map(|links| {
                    links
                        .as_array()
                        .map(|l| l.iter().filter_map(|t| t["node"].as_str()).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_n8n_workflow_is_well_formed_and_calls_the_backend_as_it_expects() {
    let workflow = n8n_workflow();
    let nodes = workflow["nodes"].as_array().expect("nodes");
    let names: Vec<&str> = nodes
        .iter()
        .map(|n| n["name"].as_str().expect("a name"))
        .collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "node names are unique");
    let mut ids: Vec<&str> = nodes
        .iter()
        .map(|n| n["id"].as_str().expect("an id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), nodes.len(), "node ids are unique");
    // `n8n import:workflow` refuses a workflow without a version id, and one marked active.
    assert!(workflow["versionId"].is_string() && workflow["id"].is_string());
    assert_eq!(workflow["active"], false);
    for node in nodes {
        assert!(
            node["type"]
                .as_str()
                .unwrap()
                .starts_with("n8n-nodes-base."),
            "{node}"
        );
        assert!(node["typeVersion"].is_number(), "{node}");
        assert_eq!(node["position"].as_array().map(Vec::len), Some(2), "{node}");
    }

    // Every connection joins existing nodes, and every node but the triggers is reached.
    let connections = workflow["connections"].as_object().expect("connections");
    let mut reached = std::collections::HashSet::new();
    for (from, outs) in connections {
        assert!(
            names.contains(&from.as_str()),
            "connection from unknown node {from}"
        );
        for output in outs["main"].as_array().expect("main outputs") {
            for link in output.as_array().expect("an output") {
                let to = link["node"].as_str().expect("a target");
                assert!(names.contains(&to), "connection to unknown node {to}");
                assert_eq!(link["type"], "main");
                reached.insert(to);
            }
        }
    }
    for node in nodes {
        let name = node["name"].as_str().unwrap();
        let trigger = node["type"] == "n8n-nodes-base.webhook";
        assert_eq!(reached.contains(name), !trigger, "{name} reached");
    }
    // The new path and the seed's, both answered by a Respond node.
    let mut paths: Vec<&str> = nodes
        .iter()
        .filter(|n| n["type"] == "n8n-nodes-base.webhook")
        .map(|n| {
            assert_eq!(n["parameters"]["httpMethod"], "POST");
            assert_eq!(n["parameters"]["responseMode"], "responseNode");
            n["parameters"]["path"].as_str().expect("a path")
        })
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, ["enrich-product", "generate-ad-image"]);

    // Backend calls: known routes, with the service key credential and X-On-Behalf-Of; every
    // call has a timeout and n8n's retries.
    let mut routes = Vec::new();
    let mut ai_calls = Vec::new();
    for node in nodes
        .iter()
        .filter(|n| n["type"] == "n8n-nodes-base.httpRequest")
    {
        let name = node["name"].as_str().unwrap();
        let p = &node["parameters"];
        let url = p["url"].as_str().expect("a url");
        let method = p["method"].as_str().unwrap_or("GET");
        assert!(
            p["options"]["timeout"].as_u64().is_some_and(|t| t > 0),
            "{name}: a timeout"
        );
        assert_eq!(node["retryOnFail"], true, "{name} retries");
        assert!(node["maxTries"].as_u64().is_some_and(|t| t >= 2), "{name}");
        assert!(
            node["waitBetweenTries"].as_u64().is_some_and(|t| t >= 1000),
            "{name}"
        );
        if let Some(path) = backend_path(url) {
            let method: http::Method = method.parse().unwrap();
            let (route, _) = Route::resolve(&method, &path)
                .unwrap_or_else(|e| panic!("{name}: {path} is not a backend route: {e}"));
            let headers: Vec<&str> = p["headerParameters"]["parameters"]
                .as_array()
                .map(|h| h.iter().filter_map(|h| h["name"].as_str()).collect())
                .unwrap_or_default();
            if route == Route::Me {
                // The caller's own token, forwarded: this is how the workflow learns the uid.
                assert_eq!(headers, ["Authorization"], "{name}");
                assert!(node["credentials"].is_null(), "{name}");
            } else {
                assert_eq!(p["authentication"], "genericCredentialType", "{name}");
                assert_eq!(p["genericAuthType"], "httpHeaderAuth", "{name}");
                assert!(node["credentials"]["httpHeaderAuth"]["name"].is_string());
                assert!(headers.contains(&"X-On-Behalf-Of"), "{name}");
            }
            if route == Route::Broadcast {
                let body = p["jsonBody"].as_str().expect("a JSON body");
                assert!(body.contains("\"ai:progress\""), "{body}");
                assert!(body.contains("uid") && body.contains("data"), "{body}");
            }
            if matches!(route, Route::UpdateProduct | Route::UploadProductImage) {
                // A product answer has an `error` field of its own, which n8n would take for
                // a failed call (and retry) unless it sits under the whole response's `body`.
                assert_eq!(
                    p["options"]["response"]["response"]["fullResponse"], true,
                    "{name}"
                );
            }
            routes.push(route);
        } else {
            let path = url
                .strip_prefix("={{ $('Config').first().json.aiBaseUrl }}")
                .unwrap_or_else(|| {
                    panic!(
                        "{name}: the URL must start with the Config node's backendUrl or aiBaseUrl"
                    )
                });
            assert_eq!(method, "POST");
            assert_eq!(p["genericAuthType"], "httpHeaderAuth", "{name}");
            ai_calls.push(path.to_owned());
        }
    }
    for route in [
        Route::Me,
        Route::UpdateProduct,
        Route::Broadcast,
        Route::UploadProductImage,
    ] {
        assert!(routes.contains(&route), "the workflow calls {route:?}");
    }
    assert!(
        !routes.contains(&Route::Login),
        "no login bootstrap (a user read, every business, a products query) per run"
    );
    ai_calls.sort();
    assert_eq!(ai_calls, ["/chat/completions", "/images/generations"]);
}

/// Nothing the workflow does leaves a product `processing`: from the moment "Mark processing"
/// succeeds, every node either cannot stop the run (n8n's `onError` continues) and every one
/// of its outputs, its error output included, leads on, until "Mark enriched" succeeds or
/// "Mark failed" is reached; and a "Mark processing" whose outcome is unknown reaches "Mark
/// failed" too.
#[test]
fn every_failure_of_the_n8n_workflow_ends_in_mark_failed() {
    let workflow = n8n_workflow();
    let node = |name: &str| -> &Value {
        workflow["nodes"]
            .as_array()
            .and_then(|nodes| nodes.iter().find(|n| n["name"] == name))
            .unwrap_or_else(|| panic!("no node {name}"))
    };
    // Outputs a node has: one, two for an IF; plus the error output with continueErrorOutput.
    let expected_outputs = |n: &Value| {
        let regular = if n["type"] == "n8n-nodes-base.if" {
            2
        } else {
            1
        };
        regular + usize::from(n["onError"] == "continueErrorOutput")
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut queue: Vec<&str> = outputs(&workflow, "Mark processing")[0].clone();
    assert!(!queue.is_empty(), "Mark processing leads on");
    while let Some(name) = queue.pop() {
        if name == "Mark failed" || !seen.insert(name) {
            continue;
        }
        let n = node(name);
        let on_error = n["onError"].as_str().unwrap_or("stopWorkflow");
        let continues = matches!(on_error, "continueErrorOutput" | "continueRegularOutput");
        let can_fail = !matches!(
            n["type"].as_str(),
            Some("n8n-nodes-base.if" | "n8n-nodes-base.set")
        );
        assert!(
            continues || !can_fail,
            "{name} stops the run on an error (onError {on_error})"
        );
        let outs = outputs(&workflow, name);
        assert_eq!(outs.len(), expected_outputs(n), "{name}: its outputs");
        for (index, targets) in outs.iter().enumerate() {
            let enriched = name == "Mark enriched" && index == 0;
            assert!(
                enriched || !targets.is_empty(),
                "{name}: output {index} leads nowhere while the product is processing"
            );
            if !enriched {
                queue.extend(targets);
            }
        }
    }
    for name in [
        "Progress: caption",
        "Write caption",
        "Progress: image",
        "Generate image",
        "Image to file",
        "Store image",
        "Mark enriched",
    ] {
        assert!(seen.contains(name), "{name} runs while processing");
        assert_eq!(node(name)["onError"], "continueErrorOutput", "{name}");
        assert_eq!(
            outputs(&workflow, name).last().map(Vec::as_slice),
            Some(["Mark failed"].as_slice()),
            "{name}'s error output"
        );
    }
    // A failed processing mark may still have been written (a 5xx, no answer): it is marked
    // failed too.
    let mut queue: Vec<&str> = outputs(&workflow, "Mark processing")[1].clone();
    let mut reaches_mark_failed = false;
    let mut visited = std::collections::BTreeSet::new();
    while let Some(name) = queue.pop() {
        reaches_mark_failed |= name == "Mark failed";
        if visited.insert(name) {
            queue.extend(outputs(&workflow, name).concat());
        }
    }
    assert!(reaches_mark_failed, "Mark processing's error output");
    // Marking failed retries longest; if it still cannot, the sweeper fails the product at its
    // processingUntil. What follows the two marks never stops the run on an error.
    let mark_failed = node("Mark failed");
    assert!(mark_failed["maxTries"].as_u64() >= node("Store image")["maxTries"].as_u64());
    for name in ["Mark failed", "Progress: failed", "Progress: done"] {
        assert_eq!(node(name)["onError"], "continueRegularOutput", "{name}");
    }
}

#[test]
fn the_n8n_docs_name_the_version_the_workflow_is_tested_with() {
    let package: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/n8n/test/package.json")).expect("package.json"),
    )
    .expect("JSON");
    let version = package["dependencies"]["n8n"]
        .as_str()
        .expect("a pinned n8n");
    assert!(
        version.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "an exact version, not a range: {version}"
    );
    let docs = std::fs::read_to_string(format!("{ROOT}/docs/n8n.md")).expect("docs/n8n.md");
    assert!(
        docs.contains(&format!("n8n {version}")),
        "docs/n8n.md names n8n {version}"
    );
}

/// Lambda's limit on a synchronous invocation's event, in bytes.
const LAMBDA_EVENT_LIMIT: usize = 6 * 1024 * 1024;

#[test]
fn the_largest_upload_fits_a_lambda_event_with_room_for_the_headers() {
    use base64::Engine;
    let mut event = sample_events()
        .remove("products-upload-image")
        .expect("the upload sample event");
    let image = vec![0xAB_u8; adsync::images::MAX_UPLOAD_BYTES];
    event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&image));
    event["isBase64Encoded"] = json!(true);
    // A browser's headers, an ID token of the largest size Firebase issues, and more.
    let headers = event["headers"].as_object_mut().expect("headers");
    headers.insert(
        "authorization".into(),
        json!(format!("Bearer {}", "t".repeat(4096))),
    );
    headers.insert("cookie".into(), json!("c".repeat(8192)));
    headers.insert("user-agent".into(), json!("u".repeat(512)));
    let size = serde_json::to_vec(&event).expect("event JSON").len();
    assert!(
        size + 64 * 1024 < LAMBDA_EVENT_LIMIT,
        "a {}-byte upload makes a {size}-byte event",
        adsync::images::MAX_UPLOAD_BYTES
    );
}

/// The lines of `template.yaml` indented under the line `header` (itself included).
fn template_block(header: &str) -> String {
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).expect("template.yaml");
    let mut lines = template.lines().skip_while(|l| l.trim_end() != header);
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no `{header}` in template.yaml"));
    let indent = first.len() - first.trim_start().len();
    let mut block = vec![first];
    block.extend(
        lines.take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent),
    );
    block.join("\n")
}

#[test]
fn both_apis_log_access_without_tokens() {
    for stage in ["  HttpApi:", "  WebSocketStage:"] {
        let block = template_block(stage);
        let (_, settings) = block
            .split_once("AccessLogSettings:")
            .unwrap_or_else(|| panic!("{stage} logs no access"));
        let format = settings
            .split_once("Format:")
            .map(|(_, f)| f.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("{stage}: no access log format"));
        assert!(format.contains("$context.requestid"), "{format}");
        // Tokens travel in `?token=`, the Authorization header and the subprotocol.
        for revealing in ["$request.", "querystring", "$context.path", "header"] {
            assert!(!format.contains(revealing), "{stage} logs {revealing}");
        }
    }
}

#[test]
fn generation_has_its_own_concurrency_and_a_lower_throttle() {
    let function = template_block("  AiGenerateAdImageFunction:");
    assert!(
        function.contains("ReservedConcurrentExecutions: !Ref GenerationConcurrency"),
        "{function}"
    );
    let api = template_block("  HttpApi:");
    let route = api
        .split_once("POST /ai/generate-ad-image:")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no route setting for generation: {api}"));
    assert!(route.contains("ThrottlingRateLimit: !Ref GenerationThrottlingRateLimit"));
    let default_of = |parameter: &str| -> u64 {
        template_block(&format!("  {parameter}:"))
            .lines()
            .find_map(|l| l.trim().strip_prefix("Default:"))
            .and_then(|v| v.trim().trim_matches('\'').parse().ok())
            .unwrap_or_else(|| panic!("no default for {parameter}"))
    };
    assert!(
        default_of("GenerationThrottlingRateLimit") < default_of("ApiThrottlingRateLimit")
            && default_of("GenerationThrottlingBurstLimit") < default_of("ApiThrottlingBurstLimit")
    );
}

#[test]
fn the_deployed_configuration_allows_no_local_origin() {
    let config = std::fs::read_to_string(format!("{ROOT}/samconfig.toml")).expect("samconfig");
    let deploy = config
        .split("[default.deploy.parameters]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [default.deploy.parameters] table");
    let origins = deploy
        .lines()
        .find_map(|l| {
            l.trim()
                .trim_matches(['"', ','])
                .strip_prefix("CorsAllowedOrigins=")
        })
        .expect("CorsAllowedOrigins");
    for origin in origins.split(',') {
        let url = url::Url::parse(origin.trim())
            .unwrap_or_else(|e| panic!("{origin}: not an origin ({e})"));
        assert_eq!(url.scheme(), "https", "{origin}");
        assert!(
            !adsync::outbound::is_loopback_url(origin),
            "a local origin in production: {origin}"
        );
    }
}

#[test]
fn the_storage_rules_let_one_image_be_fetched_and_none_listed() {
    let rules = std::fs::read_to_string(format!("{ROOT}/storage.rules")).expect("storage.rules");
    let grants: Vec<&str> = rules
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("allow "))
        .collect();
    assert_eq!(
        grants,
        ["allow get: if true;", "allow write: if false;"],
        "`read` would include `list`"
    );
}

#[test]
fn raising_the_log_level_keeps_the_metrics() {
    // EMF lines carry no `level`: Lambda's own filter would take them for INFO and drop them
    // above it, so the level is RUST_LOG's business and Lambda's filter lets all through.
    let globals = template_block("  Function:");
    assert!(
        globals.contains("ApplicationLogLevel: TRACE"),
        "Lambda must not filter application lines: {globals}"
    );
    assert!(globals.contains("RUST_LOG: !Ref LogLevel"), "{globals}");
}

/// Every top-level entry of `template.yaml`'s sections (indented two spaces) of `kind` (its
/// `Type`): its logical id and its block.
fn template_resources(kind: &str) -> Vec<(String, String)> {
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).expect("template.yaml");
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in template.lines() {
        let top = line.starts_with("  ") && !line.starts_with("   ") && line.ends_with(':');
        if top {
            blocks.push((line.trim().trim_end_matches(':').to_owned(), String::new()));
        } else if let Some((_, block)) = blocks.last_mut().filter(|_| line.starts_with("    ")) {
            block.push_str(line);
            block.push('\n');
        }
    }
    blocks.retain(|(_, block)| block.starts_with(&format!("    Type: {kind}\n")));
    blocks
}

fn property<'a>(block: &'a str, name: &str) -> Option<&'a str> {
    block
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
        .map(str::trim)
}

#[test]
fn the_alarms_watch_every_function_both_apis_and_the_metrics_the_code_emits() {
    let alarms = template_resources("AWS::CloudWatch::Alarm");
    assert!(alarms.len() > 30, "{} alarms", alarms.len());
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    let watching = |namespace: &str, metric: &str, dimension: &str| {
        alarms.iter().any(|(_, block)| {
            property(block, "Namespace") == Some(namespace)
                && property(block, "MetricName") == Some(metric)
                && block.contains(dimension)
        })
    };
    // Every function: its failed invocations and its throttles.
    let functions = template_resources("AWS::Serverless::Function");
    assert_eq!(functions.len(), adsync::function::Function::all().count());
    for (logical_id, block) in &functions {
        let binary = property(block, "Binary").unwrap_or_default();
        let dimension = format!("Value: !Ref {logical_id}");
        for metric in ["Errors", "Throttles"] {
            assert!(
                watching("AWS/Lambda", metric, &dimension),
                "no {metric} alarm for {binary}"
            );
        }
    }
    assert_eq!(
        alarms
            .iter()
            .filter(|(_, b)| property(b, "Namespace") == Some("AWS/Lambda"))
            .count(),
        2 * adsync::function::Function::all().count()
    );
    // The APIs' 5xx: the HTTP API's answers, the WebSocket routes' failed integrations.
    assert!(watching("AWS/ApiGateway", "5xx", "Value: !Ref HttpApi"));
    assert!(watching(
        "AWS/ApiGateway",
        "ExecutionError",
        "Value: !Ref WebSocketApi"
    ));
    // The application's own: only metrics the code emits, and the failures among them.
    let emitted: Vec<&str> = adsync::telemetry::METRICS
        .iter()
        .map(|(name, _)| *name)
        .collect();
    for (id, block) in &alarms {
        if property(block, "Namespace") == Some(adsync::telemetry::NAMESPACE) {
            let metric = property(block, "MetricName").unwrap_or_default();
            assert!(
                emitted.contains(&metric),
                "{id} watches {metric}, which nothing emits"
            );
            // The EMF lines carry the metric without dimensions too: what these watch.
            assert!(!block.contains("Dimensions:"), "{id}");
        }
    }
    for metric in ["FailedPushes", "GenerationsFailed", "StuckProductsFailed"] {
        assert!(watching("AdSync", metric, ""), "no alarm on {metric}");
    }
    // Notifications only when a topic is given.
    for (id, block) in &alarms {
        for actions in ["AlarmActions", "OKActions"] {
            assert_eq!(
                property(block, actions),
                Some("!If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]"),
                "{id} {actions}"
            );
        }
    }
    assert!(template.contains("HasAlarmTopic: !Not [!Equals [!Ref AlarmTopicArn, '']]"));
}

#[test]
fn the_dashboard_shows_every_metric_the_code_emits() {
    let dashboard = template_block("  Dashboard:");
    assert!(dashboard.contains("Type: AWS::CloudWatch::Dashboard"));
    let body = dashboard
        .split_once("DashboardBody: !Sub |")
        .map(|(_, body)| body)
        .expect("a dashboard body");
    // `!Sub` variables aside, the body is the JSON CloudWatch takes.
    let json: Value = serde_json::from_str(&body.replace("${", "{"))
        .unwrap_or_else(|e| panic!("the dashboard body is not JSON ({e}):\n{body}"));
    let text = json.to_string();
    for (metric, _) in adsync::telemetry::METRICS {
        assert!(
            text.contains(&format!("[\"AdSync\",\"{metric}\"")),
            "the dashboard has no {metric}"
        );
    }
}

//! A mocked Kubernetes API server that knows EndpointSlices only: it lists them and streams the
//! watch events a test sends, as newline-delimited JSON on a kept-open response.

use std::{
    collections::{BTreeMap, HashMap},
    convert::Infallible,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Body,
    extract::{Path, RawQuery, State},
    http::{StatusCode, header},
    response::Response,
    routing::get,
};
use iee_test_support::wait_until;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::UnboundedReceiverStream};

use super::{NAMESPACE, SERVICE, WAIT};

/// One request the mock answered: namespace and decoded query parameters.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) namespace: String,
    pub(crate) query: HashMap<String, String>,
}

#[derive(Default)]
struct MockState {
    slices: BTreeMap<String, Value>,
    version: u64,
    watchers: Vec<mpsc::UnboundedSender<String>>,
    requests: Vec<Request>,
    failing: bool,
}

/// A Kubernetes API server that knows EndpointSlices only: lists them and streams watch events
/// the test sends.
#[derive(Clone)]
pub(crate) struct MockApi {
    state: Arc<Mutex<MockState>>,
    pub(crate) url: String,
}

impl MockApi {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let api = Self {
            state: Arc::default(),
            url,
        };
        let app = Router::new()
            .route(
                "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                get(endpoint_slices),
            )
            .with_state(api.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        api
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MockState> {
        self.state.lock().unwrap()
    }

    /// Changes the slices and sends the event to every open watch.
    pub(crate) fn event(&self, kind: &str, mut slice: Value) {
        let mut state = self.state();
        state.version += 1;
        slice["metadata"]["resourceVersion"] = json!(state.version.to_string());
        let name = slice["metadata"]["name"].as_str().unwrap().to_owned();
        if kind == "DELETED" {
            state.slices.remove(&name);
        } else {
            state.slices.insert(name, slice.clone());
        }
        let line = format!("{}\n", json!({"type": kind, "object": slice}));
        state.watchers.retain(|w| w.send(line.clone()).is_ok());
    }

    /// Sends a bookmark (no change) to every open watch.
    pub(crate) fn bookmark(&self) {
        let mut state = self.state();
        state.version += 1;
        let line = format!(
            "{}\n",
            json!({"type": "BOOKMARK", "object": {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"resourceVersion": state.version.to_string()},
            }})
        );
        state.watchers.retain(|w| w.send(line.clone()).is_ok());
    }

    /// Changes a slice without telling any watch: only a new list shows it.
    pub(crate) fn put_silently(&self, slice: Value) {
        let mut state = self.state();
        state.version += 1;
        let name = slice["metadata"]["name"].as_str().unwrap().to_owned();
        state.slices.insert(name, slice);
    }

    /// Ends every open watch (the connection closes, as when an API server restarts).
    pub(crate) fn drop_watches(&self) {
        self.state().watchers.clear();
    }

    /// From now on every request fails with 500 (and open watches end), or works again.
    pub(crate) fn set_failing(&self, failing: bool) {
        let mut state = self.state();
        state.failing = failing;
        state.watchers.clear();
    }

    fn open_watches(&self) -> usize {
        let mut state = self.state();
        state.watchers.retain(|w| !w.is_closed());
        state.watchers.len()
    }

    pub(crate) fn requests(&self) -> Vec<Request> {
        self.state().requests.clone()
    }

    /// Waits until the client has an open watch, so events sent next reach it.
    pub(crate) async fn wait_for_watch(&self) {
        wait_until(WAIT, "an open watch", || async {
            (self.open_watches() > 0).then_some(())
        })
        .await;
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn endpoint_slices(
    State(api): State<MockApi>,
    Path(namespace): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = decode_query(query.as_deref().unwrap_or_default());
    let mut state = api.state();
    state.requests.push(Request {
        namespace,
        query: query.clone(),
    });
    if state.failing {
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "etcdserver: request timed out", "reason": "InternalError",
                    "code": 500}),
        );
    }
    if query.get("watch").map(String::as_str) == Some("true") {
        let (tx, rx) = mpsc::unbounded_channel();
        state.watchers.push(tx);
        let lines = UnboundedReceiverStream::new(rx).map(Ok::<_, Infallible>);
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(lines))
            .unwrap();
    }
    let items: Vec<Value> = state.slices.values().cloned().collect();
    json_response(
        StatusCode::OK,
        &json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSliceList",
            "metadata": {"resourceVersion": state.version.to_string()},
            "items": items,
        }),
    )
}

/// `a=b&c=d` with percent-encoding, as the client sends it.
fn decode_query(query: &str) -> HashMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    }
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// One endpoint of a slice: pod name, IP, ready, terminating.
pub(crate) struct Pod(
    pub(crate) &'static str,
    pub(crate) &'static str,
    pub(crate) bool,
    pub(crate) bool,
);

/// An EndpointSlice as the EndpointSlice controller writes it for the profile headless Service.
pub(crate) fn slice(name: &str, pods: &[Pod]) -> Value {
    let endpoints: Vec<Value> = pods
        .iter()
        .map(|Pod(pod, ip, ready, terminating)| {
            json!({
                "addresses": [ip],
                // With publishNotReadyAddresses, `ready` is always true; `serving` is the pod's
                // readiness.
                "conditions": {"ready": true, "serving": ready, "terminating": terminating},
                "hostname": pod,
                "nodeName": "worker-1",
                "targetRef": {"kind": "Pod", "name": pod, "namespace": NAMESPACE,
                              "uid": format!("uid-{pod}")},
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "generateName": format!("{SERVICE}-"),
            "labels": {
                "kubernetes.io/service-name": SERVICE,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": SERVICE,
                                 "uid": "svc-uid", "controller": true,
                                 "blockOwnerDeletion": true}],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [
            {"name": "metrics", "port": 9464, "protocol": "TCP"},
            {"name": "grpc", "port": 50051, "protocol": "TCP"},
        ],
    })
}

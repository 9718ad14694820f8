//! The routed profile client against real tonic servers on loopback: each server is a small fake
//! profile node that owns some shards and redirects, or has no owner for, the others.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{HashMap, HashSet},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use iee_api::{
    pb::common::CustomerRef,
    profile::{
        CommitContactRequest, CommitContactResponse, EraseCustomerRequest, EraseCustomerResponse,
        GetProfileRequest, GetProfileResponse, Profile, ProfileApi, ProfileClient, ProfileError,
        ReleaseContactRequest, ReleaseContactResponse, ReserveContactRequest,
        ReserveContactResponse, RouteOptions, Signal, WatchSignalsRequest, WatchSignalsResponse,
        profile_service_server::{ProfileService, ProfileServiceServer},
    },
    shard::shard_of,
};
use tokio::{net::TcpListener, sync::oneshot};
use tokio_stream::{Stream, StreamExt, wrappers::TcpListenerStream};
use tonic::{Request, Response, Status};

const SHARDS: u32 = 8;

/// What a fake node answers for a shard.
#[derive(Clone)]
enum Route {
    Own,
    Redirect { owner: String, epoch: u64 },
    NoOwner,
    Fail(ProfileError),
    Hang,
}

struct Fake {
    addr: String,
    routes: Mutex<HashMap<u32, Route>>,
    calls: AtomicUsize,
    served: AtomicUsize,
}

impl Fake {
    fn set(&self, shard: u32, route: Route) {
        self.routes.lock().unwrap().insert(shard, route);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    async fn answer(&self, customer: Option<&CustomerRef>) -> Result<u32, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let customer = customer.ok_or_else(|| Status::invalid_argument("no customer"))?;
        let shard = shard_of(&customer.tenant_id, &customer.customer_id, SHARDS);
        let route = self
            .routes
            .lock()
            .unwrap()
            .get(&shard)
            .cloned()
            .unwrap_or(Route::NoOwner);
        match route {
            Route::Own => {
                self.served.fetch_add(1, Ordering::SeqCst);
                Ok(shard)
            }
            Route::Redirect { owner, epoch } => Err(ProfileError::WrongOwner {
                shard,
                owner,
                epoch,
            }
            .into()),
            Route::NoOwner => Err(ProfileError::NoOwner { shard }.into()),
            Route::Fail(err) => Err(err.into()),
            Route::Hang => std::future::pending().await,
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchSignalsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ProfileService for Fake {
    async fn get_profile(
        &self,
        request: Request<GetProfileRequest>,
    ) -> Result<Response<GetProfileResponse>, Status> {
        let customer = request.into_inner().customer;
        let shard = self.answer(customer.as_ref()).await?;
        Ok(Response::new(GetProfileResponse {
            profile: Some(Profile {
                customer,
                shard,
                ..Default::default()
            }),
            found: true,
            read_at: None,
        }))
    }

    async fn erase_customer(
        &self,
        request: Request<EraseCustomerRequest>,
    ) -> Result<Response<EraseCustomerResponse>, Status> {
        self.answer(request.get_ref().customer.as_ref()).await?;
        Ok(Response::new(EraseCustomerResponse {
            erased: true,
            ..Default::default()
        }))
    }

    async fn reserve_contact(
        &self,
        request: Request<ReserveContactRequest>,
    ) -> Result<Response<ReserveContactResponse>, Status> {
        self.answer(request.get_ref().customer.as_ref()).await?;
        Ok(Response::new(ReserveContactResponse::default()))
    }

    async fn commit_contact(
        &self,
        request: Request<CommitContactRequest>,
    ) -> Result<Response<CommitContactResponse>, Status> {
        self.answer(request.get_ref().customer.as_ref()).await?;
        Ok(Response::new(CommitContactResponse::default()))
    }

    async fn release_contact(
        &self,
        request: Request<ReleaseContactRequest>,
    ) -> Result<Response<ReleaseContactResponse>, Status> {
        self.answer(request.get_ref().customer.as_ref()).await?;
        Ok(Response::new(ReleaseContactResponse::default()))
    }

    type WatchSignalsStream = WatchStream;

    async fn watch_signals(
        &self,
        _request: Request<WatchSignalsRequest>,
    ) -> Result<Response<Self::WatchSignalsStream>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        // One signal naming this node, then the end of the stream.
        let signal = Signal {
            signal_id: self.addr.clone(),
            ..Default::default()
        };
        let stream = tokio_stream::iter([Ok(WatchSignalsResponse {
            signal: Some(signal),
        })]);
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A fake node serving on a free loopback port until `stop` is called or the test ends.
struct Node {
    fake: Arc<Fake>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Node {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let fake = Arc::new(Fake {
            addr,
            routes: Mutex::new(HashMap::new()),
            calls: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let service = ProfileServiceServer::from_arc(fake.clone());
        let done = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            fake,
            stop: Some(stop),
            done: Some(done),
        }
    }

    fn addr(&self) -> String {
        self.fake.addr.clone()
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            tokio::time::timeout(Duration::from_secs(5), done)
                .await
                .expect("server stops within 5 s")
                .unwrap();
        }
    }
}

impl std::ops::Deref for Node {
    type Target = Fake;

    fn deref(&self) -> &Fake {
        &self.fake
    }
}

/// An address nothing listens on.
async fn dead_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

fn customer(id: &str) -> CustomerRef {
    CustomerRef {
        tenant_id: "acme".into(),
        customer_id: id.into(),
        anonymous_id: String::new(),
    }
}

fn shard(id: &str) -> u32 {
    shard_of("acme", id, SHARDS)
}

fn get(id: &str) -> GetProfileRequest {
    GetProfileRequest {
        customer: Some(customer(id)),
        min_applied_offset: String::new(),
    }
}

fn client(seeds: &[&Node], options: RouteOptions) -> ProfileClient {
    let seeds = seeds.iter().map(|n| n.addr()).collect();
    ProfileClient::connect(seeds, SHARDS, options).unwrap()
}

fn quick(retry_for: Duration) -> RouteOptions {
    RouteOptions {
        retry_for,
        connect_timeout: Duration::from_millis(500),
        ..RouteOptions::default()
    }
}

#[tokio::test]
async fn redirect_is_followed_and_the_owner_is_cached() {
    let (a, b) = (Node::start().await, Node::start().await);
    let s = shard("c-1");
    a.set(
        s,
        Route::Redirect {
            owner: b.addr(),
            epoch: 5,
        },
    );
    b.set(s, Route::Own);
    let client = client(&[&a], RouteOptions::default());

    let response = client.get_profile(get("c-1")).await.unwrap();
    assert_eq!(response.profile.unwrap().shard, s);
    assert_eq!((a.calls(), b.served()), (1, 1));
    assert_eq!(client.shard_map_snapshot()[&s], (b.addr(), 5));

    // Straight to the cached owner: the seed is not asked again, whatever the RPC.
    client.get_profile(get("c-1")).await.unwrap();
    client
        .erase_customer(EraseCustomerRequest {
            customer: Some(customer("c-1")),
            reason: "test".into(),
        })
        .await
        .unwrap();
    assert_eq!((a.calls(), b.calls(), b.served()), (1, 3, 3));
}

#[tokio::test]
async fn higher_epoch_redirect_replaces_the_cached_owner() {
    let (a, b, c) = (
        Node::start().await,
        Node::start().await,
        Node::start().await,
    );
    let s = shard("c-2");
    a.set(
        s,
        Route::Redirect {
            owner: b.addr(),
            epoch: 5,
        },
    );
    b.set(s, Route::Own);
    let client = client(&[&a], RouteOptions::default());
    client.get_profile(get("c-2")).await.unwrap();

    // The shard moved to c with a new lease.
    b.set(
        s,
        Route::Redirect {
            owner: c.addr(),
            epoch: 6,
        },
    );
    c.set(s, Route::Own);
    client.get_profile(get("c-2")).await.unwrap();
    assert_eq!(client.shard_map_snapshot()[&s], (c.addr(), 6));
    client.get_profile(get("c-2")).await.unwrap();
    assert_eq!((a.calls(), b.calls(), c.served()), (1, 2, 2));
}

#[tokio::test]
async fn lower_epoch_redirect_does_not_replace_the_cached_owner() {
    let (a, b, c) = (
        Node::start().await,
        Node::start().await,
        Node::start().await,
    );
    let s = shard("c-3");
    a.set(
        s,
        Route::Redirect {
            owner: b.addr(),
            epoch: 5,
        },
    );
    b.set(s, Route::Own);
    let client = client(&[&a], RouteOptions::default());
    client.get_profile(get("c-3")).await.unwrap();

    // b answers from a stale shard map naming an older lease: the call is still served (at the
    // node b names), but the cache keeps the epoch-5 owner.
    b.set(
        s,
        Route::Redirect {
            owner: c.addr(),
            epoch: 3,
        },
    );
    c.set(s, Route::Own);
    client.get_profile(get("c-3")).await.unwrap();
    assert_eq!(c.served(), 1);
    assert_eq!(client.shard_map_snapshot()[&s], (b.addr(), 5));

    client.get_profile(get("c-3")).await.unwrap();
    assert_eq!(
        b.calls(),
        3,
        "the next call goes to the epoch-5 owner first"
    );
    assert_eq!(a.calls(), 1);
}

#[tokio::test]
async fn no_owner_is_retried_until_an_owner_appears() {
    let (a, b) = (Node::start().await, Node::start().await);
    let s = shard("c-4");
    a.set(s, Route::NoOwner);
    b.set(s, Route::Own);
    let client = client(&[&a], quick(Duration::from_secs(5)));

    let fake = a.fake.clone();
    let owner = b.addr();
    let hand_off = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        fake.set(s, Route::Redirect { owner, epoch: 2 });
    });
    let started = Instant::now();
    client
        .reserve_contact(ReserveContactRequest {
            customer: Some(customer("c-4")),
            action_id: "offer".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    hand_off.await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(a.calls() >= 3, "retried with backoff: {} calls", a.calls());
    assert_eq!(b.served(), 1);
    assert_eq!(client.shard_map_snapshot()[&s], (b.addr(), 2));
}

#[tokio::test]
async fn no_owner_is_returned_once_retry_for_has_passed() {
    let a = Node::start().await;
    let s = shard("c-5");
    a.set(s, Route::NoOwner);
    let client = client(&[&a], quick(Duration::from_millis(400)));
    let started = Instant::now();
    let err = client.get_profile(get("c-5")).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err, ProfileError::NoOwner { shard: s });
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    // 50, 100, 200 ms apart, then cut at the deadline.
    assert!((4..=6).contains(&a.calls()), "{} calls", a.calls());
}

#[tokio::test]
async fn unavailable_is_returned_once_retry_for_has_passed_when_no_node_answers() {
    let seeds = vec![dead_addr().await, dead_addr().await];
    let client = ProfileClient::connect(seeds, SHARDS, quick(Duration::from_millis(400))).unwrap();
    let started = Instant::now();
    let err = client.get_profile(get("c-6")).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, ProfileError::Unavailable(_)), "{err:?}");
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn unreachable_owner_is_dropped_and_the_seeds_are_asked_again() {
    let (a, mut b, c) = (
        Node::start().await,
        Node::start().await,
        Node::start().await,
    );
    let s = shard("c-7");
    a.set(
        s,
        Route::Redirect {
            owner: b.addr(),
            epoch: 5,
        },
    );
    b.set(s, Route::Own);
    let client = client(&[&a], quick(Duration::from_secs(5)));
    client.get_profile(get("c-7")).await.unwrap();

    // b dies; the shard is taken over by c under a new lease.
    b.stop().await;
    a.set(
        s,
        Route::Redirect {
            owner: c.addr(),
            epoch: 6,
        },
    );
    c.set(s, Route::Own);
    client.get_profile(get("c-7")).await.unwrap();
    assert_eq!(c.served(), 1);
    assert_eq!(a.calls(), 2);
    assert_eq!(client.shard_map_snapshot()[&s], (c.addr(), 6));
}

#[tokio::test]
async fn seeds_are_asked_in_turn_while_unreachable() {
    let a = Node::start().await;
    let s = shard("c-8");
    a.set(s, Route::Own);
    let seeds = vec![dead_addr().await, a.addr()];
    let client = ProfileClient::connect(seeds, SHARDS, quick(Duration::from_secs(5))).unwrap();
    // Whichever seed comes first, the live one is reached within one backoff.
    for _ in 0..2 {
        client.get_profile(get("c-8")).await.unwrap();
    }
    assert_eq!(a.served(), 2);
}

#[tokio::test]
async fn invalid_customer_is_rejected_without_a_call() {
    let a = Node::start().await;
    let client = client(&[&a], RouteOptions::default());
    let cases = [
        (None, "customer"),
        (
            Some(CustomerRef {
                customer_id: "c-1".into(),
                ..Default::default()
            }),
            "customer.tenant_id",
        ),
        (
            Some(CustomerRef {
                tenant_id: "acme".into(),
                ..Default::default()
            }),
            "customer.customer_id",
        ),
    ];
    for (customer, expected) in cases {
        let err = client
            .get_profile(GetProfileRequest {
                customer: customer.clone(),
                min_applied_offset: String::new(),
            })
            .await
            .unwrap_err();
        match err {
            ProfileError::InvalidArgument { field, .. } => assert_eq!(field, expected),
            other => panic!("unexpected {other:?}"),
        }
        let err = client
            .commit_contact(CommitContactRequest {
                customer,
                reservation_id: "r-1".into(),
                contacted_at: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, ProfileError::InvalidArgument { .. }));
    }
    assert_eq!(a.calls(), 0);
}

#[tokio::test]
async fn other_errors_are_returned_as_they_are_without_retry() {
    let a = Node::start().await;
    let s = shard("c-9");
    let not_found = ProfileError::NotFound("reservation r-1 is unknown".into());
    a.set(s, Route::Fail(not_found.clone()));
    let client = client(&[&a], RouteOptions::default());
    let err = client
        .commit_contact(CommitContactRequest {
            customer: Some(customer("c-9")),
            reservation_id: "r-1".into(),
            contacted_at: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err, not_found);
    assert_eq!(a.calls(), 1);
}

#[tokio::test]
async fn redirect_loop_ends_with_the_redirect() {
    let (a, b) = (Node::start().await, Node::start().await);
    let s = shard("c-10");
    a.set(
        s,
        Route::Redirect {
            owner: b.addr(),
            epoch: 1,
        },
    );
    b.set(
        s,
        Route::Redirect {
            owner: a.addr(),
            epoch: 1,
        },
    );
    let options = RouteOptions::default();
    let max_redirects = options.max_redirects as usize;
    let client = client(&[&a], options);
    let err = client
        .release_contact(ReleaseContactRequest {
            customer: Some(customer("c-10")),
            reservation_id: "r-1".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ProfileError::WrongOwner { .. }), "{err:?}");
    assert_eq!(a.calls() + b.calls(), max_redirects + 1);
}

#[tokio::test]
async fn attempt_that_gets_no_answer_ends_with_deadline_exceeded() {
    let a = Node::start().await;
    let s = shard("c-11");
    a.set(s, Route::Hang);
    let client = client(
        &[&a],
        RouteOptions {
            request_timeout: Some(Duration::from_millis(200)),
            ..RouteOptions::default()
        },
    );
    let started = Instant::now();
    let err = client.get_profile(get("c-11")).await.unwrap_err();
    assert!(matches!(err, ProfileError::DeadlineExceeded(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(a.calls(), 1, "a timed-out attempt is not retried");
}

#[tokio::test]
async fn watch_signals_merges_the_streams_of_every_seed() {
    let (a, b) = (Node::start().await, Node::start().await);
    let client = client(&[&a, &b], RouteOptions::default());
    let stream = client
        .watch_signals(WatchSignalsRequest::default())
        .await
        .unwrap();
    let signals: Vec<_> = tokio::time::timeout(Duration::from_secs(5), stream.collect::<Vec<_>>())
        .await
        .expect("both streams end");
    let ids: HashSet<String> = signals.into_iter().map(|s| s.unwrap().signal_id).collect();
    assert_eq!(ids, HashSet::from([a.addr(), b.addr()]));
}

#[tokio::test]
async fn watch_signals_fails_when_a_seed_cannot_be_opened() {
    let a = Node::start().await;
    let seeds = vec![a.addr(), dead_addr().await];
    let client = ProfileClient::connect(seeds, SHARDS, quick(Duration::from_secs(1))).unwrap();
    let err = match client.watch_signals(WatchSignalsRequest::default()).await {
        Ok(_) => panic!("opened without every seed"),
        Err(err) => err,
    };
    assert!(matches!(err, ProfileError::Unavailable(_)), "{err:?}");
}

#[test]
fn connect_validates_its_arguments() {
    let err = ProfileClient::connect(vec![], SHARDS, RouteOptions::default()).unwrap_err();
    assert!(matches!(err, ProfileError::InvalidArgument { ref field, .. } if field == "seeds"));
    let err =
        ProfileClient::connect(vec!["127.0.0.1:1".into()], 0, RouteOptions::default()).unwrap_err();
    assert!(
        matches!(err, ProfileError::InvalidArgument { ref field, .. } if field == "shard_count")
    );
    let err = ProfileClient::connect(vec!["not a uri".into()], SHARDS, RouteOptions::default())
        .unwrap_err();
    assert!(matches!(err, ProfileError::InvalidArgument { ref field, .. } if field == "seeds[0]"));
}

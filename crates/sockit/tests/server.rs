//! The server framework as a library: bind, serve in a thread, stop from a handle.

use std::io::{Read, Write};
use std::time::Duration;

use sockit::Endpoint;
use sockit::proto::echo::Echo;
use sockit::server::{Config, Flow, Handler, Model, Output, Server, Service};
use sockit::socket::{Peer, Shutdown, Stream};

/// A server of `service` under `model` on a loopback port, serving in a thread: its
/// address, its stop handle and the thread (which returns what `serve` returned).
fn serve_in_thread<S: Service>(
    model: Model,
    workers: Option<usize>,
    service: S,
) -> (
    Endpoint,
    Shutdown,
    std::thread::JoinHandle<sockit::Result<()>>,
) {
    let config = Config {
        model,
        workers,
        ..Config::default()
    };
    let server = Server::bind(&"127.0.0.1:0".parse().unwrap(), config).unwrap();
    let endpoint = server.local_endpoint().clone();
    let stop = server.shutdown_handle();
    (
        endpoint,
        stop,
        std::thread::spawn(move || server.serve(service)),
    )
}

#[test]
fn a_shutdown_handle_stops_every_model_with_a_client_connected() {
    for model in Model::ALL {
        let (endpoint, stop, serving) = serve_in_thread(model, None, Echo::default());

        let mut client = Stream::connect(&endpoint, Some(Duration::from_secs(5))).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        client.write_all(b"before shutdown").unwrap();
        let mut buf = [0u8; 15];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"before shutdown");

        stop.trigger();
        // The connected client sees its connection end (EOF), not a hang.
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest);
        let result = serving.join().expect("serve thread panicked");
        assert!(result.is_ok(), "{model}: {result:?}");
        assert!(
            Stream::connect(&endpoint, Some(Duration::from_secs(1))).is_err(),
            "{model} still accepts"
        );
    }
}

#[test]
fn unknown_model_names_list_the_known_ones() {
    let err = "kqueue".parse::<Model>().unwrap_err().to_string();
    assert!(
        err.contains("epoll-et") && err.contains("blocking"),
        "{err}"
    );
    for (model, name) in Model::ALL.iter().zip(Model::NAMES) {
        assert_eq!(name.parse::<Model>().unwrap(), *model);
        assert_eq!(model.to_string(), name);
    }
}

/// Echoes, but panics on `boom`: a handler with a bug that input can reach.
struct Fragile;

impl Handler for Fragile {
    fn on_data(&mut self, data: &[u8], out: &mut Output) -> Flow {
        assert!(!data.starts_with(b"boom"), "the bug was reached");
        out.extend_from_slice(data);
        Flow::Continue
    }
}

impl Service for Fragile {
    type Handler = Fragile;
    fn handler(&self, _peer: &Peer) -> Fragile {
        Fragile
    }
}

#[test]
fn a_panicking_handler_costs_its_connection_only() {
    for model in Model::ALL {
        let (endpoint, stop, serving) = serve_in_thread(model, Some(1), Fragile);
        let connect = || {
            let c = Stream::connect(&endpoint, Some(Duration::from_secs(5))).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c
        };
        // One connection stays open across the panic (not under `blocking`, which serves
        // one at a time), one comes after it.
        let mut before = (model != Model::Blocking).then(|| {
            let mut c = connect();
            c.write_all(b"one").unwrap();
            let mut buf = [0u8; 3];
            c.read_exact(&mut buf).unwrap();
            c
        });

        let mut bad = connect();
        bad.write_all(b"boom").unwrap();
        let mut rest = Vec::new();
        let _ = bad.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{model}: {rest:?}");

        let mut after = connect();
        for c in before.iter_mut().chain([&mut after]) {
            c.write_all(b"two").unwrap();
            let mut buf = [0u8; 3];
            c.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"two", "{model}");
        }
        drop((before, after));
        stop.trigger();
        let result = serving.join().expect("serve thread panicked");
        assert!(result.is_ok(), "{model}: {result:?}");
    }
}

/// Says nothing until end of stream, then streams numbered lines, one per drain.
struct LastWords(Option<usize>);

const LINES: usize = 300;

impl Handler for LastWords {
    fn on_data(&mut self, _data: &[u8], _out: &mut Output) -> Flow {
        Flow::Continue
    }
    fn on_eof(&mut self, out: &mut Output) {
        self.0 = Some(0);
        self.on_drained(out);
    }
    fn on_drained(&mut self, out: &mut Output) -> Flow {
        if let Some(i) = self.0.filter(|&i| i < LINES) {
            out.extend_from_slice(format!("{i:06}\n").as_bytes());
            self.0 = Some(i + 1);
        }
        Flow::Continue
    }
}

struct LastWordsService;

impl Service for LastWordsService {
    type Handler = LastWords;
    fn handler(&self, _peer: &Peer) -> LastWords {
        LastWords(None)
    }
}

#[test]
fn last_words_go_on_as_they_drain_under_every_model() {
    let want: Vec<u8> = (0..LINES)
        .flat_map(|i| format!("{i:06}\n").into_bytes())
        .collect();
    for model in Model::ALL {
        // After the peer's end of stream, and when the server stops.
        for at_shutdown in [false, true] {
            let (endpoint, stop, serving) = serve_in_thread(model, None, LastWordsService);
            let mut client = Stream::connect(&endpoint, Some(Duration::from_secs(5))).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            client.write_all(b"bye").unwrap();
            if at_shutdown {
                // The handler has the connection before the server is told to stop.
                std::thread::sleep(Duration::from_millis(100));
                stop.trigger();
            } else {
                client.shutdown(std::net::Shutdown::Write).unwrap();
            }
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            assert!(
                got == want,
                "{model}, at shutdown {at_shutdown}: {} bytes",
                got.len()
            );
            stop.trigger();
            assert!(serving.join().unwrap().is_ok(), "{model}");
        }
    }
}

/// The fork model reaps its own children only: a program that embeds it and starts other
/// processes still gets their exit statuses (a `waitpid(-1)` would take them).
#[test]
fn the_fork_model_leaves_other_children_to_their_parent() {
    let (endpoint, stop, serving) = serve_in_thread(Model::Fork, None, Echo::default());
    let mut other = std::process::Command::new("sh")
        .args(["-c", "exit 7"])
        .spawn()
        .unwrap();
    // Served connections make the parent reap (after each accept and on its tick) while
    // `other` has long exited.
    for _ in 0..5 {
        let mut client = Stream::connect(&endpoint, Some(Duration::from_secs(5))).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        client.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = other
        .wait()
        .expect("our child's status was taken by the server");
    assert_eq!(status.code(), Some(7));
    stop.trigger();
    assert!(serving.join().unwrap().is_ok());
}

//! The server framework as a library: bind, serve in a thread, stop from a handle.

use std::io::{Read, Write};
use std::time::Duration;

use sockit::proto::echo::Echo;
use sockit::server::{Config, Model, Server, Stream};

#[test]
fn a_shutdown_handle_stops_every_model_with_a_client_connected() {
    for model in Model::ALL {
        let config = Config {
            model,
            ..Config::default()
        };
        let server = Server::bind(&"127.0.0.1:0".parse().unwrap(), config).unwrap();
        let endpoint = server.local_endpoint().clone();
        let stop = server.shutdown_handle();
        let serving = std::thread::spawn(move || server.serve(Echo::default()));

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

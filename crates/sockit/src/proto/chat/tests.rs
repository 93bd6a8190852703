//! The core driven by hand, without sockets: one node, then two nodes sharing a simulated
//! backplane (events delivered in order, claims settled by a SET NX registry).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::*;

/// One node and everything it asked the driver to do.
struct Node {
    chat: Chat,
    inbox: HashMap<ClientId, Vec<String>>,
    published: Vec<Event>,
    claims: Vec<(ClientId, NickName)>,
    released: Vec<NickName>,
    closed: HashSet<ClientId>,
}

impl Node {
    fn new(config: Config, node: u64) -> Node {
        Node {
            chat: Chat::new(config, NodeId(node)),
            inbox: HashMap::new(),
            published: Vec::new(),
            claims: Vec::new(),
            released: Vec::new(),
            closed: HashSet::new(),
        }
    }

    fn local() -> Node {
        Node::new(Config::default(), 1)
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(id, line) => self.deliver(id, &line),
                Action::Room { room, line, except } => {
                    for m in self.chat.members(&room).to_vec() {
                        if Some(m) != except {
                            self.deliver(m, &line);
                        }
                    }
                }
                Action::Close(id) => {
                    self.closed.insert(id);
                }
                Action::Publish(e) => self.published.push(e),
                Action::Claim { client, nick } => self.claims.push((client, nick)),
                Action::Release(nick) => self.released.push(nick),
            }
        }
    }

    fn deliver(&mut self, id: ClientId, line: &[u8]) {
        assert!(!self.closed.contains(&id), "line for closed client {id:?}");
        assert_eq!(line.last(), Some(&b'\n'));
        let text = std::str::from_utf8(&line[..line.len() - 1]).unwrap();
        self.inbox.entry(id).or_default().push(text.to_owned());
    }

    fn connect(&mut self, id: u64) -> ClientId {
        let id = ClientId(id);
        let mut out = Vec::new();
        self.chat.connect(id, &mut out);
        self.apply(out);
        self.take(id);
        id
    }

    /// Connects and takes `nick` (local nodes and nodes whose claims are answered later).
    fn join(&mut self, id: u64, nick: &str) -> ClientId {
        let id = self.connect(id);
        self.send(id, nick);
        id
    }

    fn send(&mut self, id: ClientId, line: &str) {
        self.send_bytes(id, line.as_bytes());
    }

    fn send_bytes(&mut self, id: ClientId, line: &[u8]) {
        let mut out = Vec::new();
        self.chat.line(id, line, &mut out);
        self.apply(out);
    }

    fn take(&mut self, id: ClientId) -> Vec<String> {
        self.inbox.remove(&id).unwrap_or_default()
    }
}

#[test]
fn the_first_line_is_the_nick_and_messages_stay_in_their_room() {
    let mut n = Node::local();
    let alice = n.connect(1);
    n.send(alice, "hello?");
    n.send(alice, "/join #dev");
    assert_eq!(
        n.take(alice),
        vec![
            "! invalid nick hello?: a nick has only ASCII letters, digits and [ ] \\ ` _ ^ { | } -",
            "! choose a nick first: send it as a line (or /nick NAME)"
        ]
    );
    n.send(alice, "alice");
    assert_eq!(n.take(alice), vec!["* alice joined #lobby"]);
    let bob = n.join(2, "/nick bob");
    assert_eq!(n.take(alice), vec!["* bob joined #lobby"]);
    assert_eq!(n.take(bob), vec!["* bob joined #lobby"]);
    let carol = n.join(3, "carol");
    n.send(carol, "/join dev");
    n.take(alice);
    n.take(bob);
    assert_eq!(
        n.take(carol),
        vec!["* carol joined #lobby", "* carol joined #dev"]
    );

    n.send(alice, "hi all");
    assert_eq!(n.take(bob), vec!["<alice> hi all"]);
    assert!(n.take(alice).is_empty(), "not echoed to the sender");
    assert!(n.take(carol).is_empty(), "not across rooms");
    n.send(carol, "//slash at the start");
    assert_eq!(n.take(carol), Vec::<String>::new());
    assert!(n.take(bob).is_empty());
}

#[test]
fn nicks_are_unique_without_regard_to_case() {
    let mut n = Node::local();
    let alice = n.join(1, "alice");
    let other = n.join(2, "ALICE");
    assert_eq!(n.take(other), vec!["! nick ALICE is taken"]);
    n.send(other, "bob");
    n.send(other, "/nick Alice");
    assert_eq!(
        n.take(other),
        vec!["* bob joined #lobby", "! nick Alice is taken"]
    );
    n.take(alice);
    n.send(alice, "/nick Alice");
    assert_eq!(n.take(other), vec!["* alice is now known as Alice"]);
    n.send(alice, "/nick al");
    n.send(other, "/nick alice");
    n.take(alice);
    assert_eq!(
        n.take(other),
        vec!["* Alice is now known as al", "* bob is now known as alice"]
    );
    n.send(other, "/nick bad nick!");
    n.send(other, "/nick -x");
    let errors = n.take(other);
    assert!(errors[0].starts_with("! usage: /nick NAME"), "{errors:?}");
    assert!(errors[1].starts_with("! invalid nick -x"), "{errors:?}");
}

#[test]
fn private_messages_who_and_rooms() {
    let mut n = Node::local();
    let alice = n.join(1, "alice");
    let bob = n.join(2, "bob");
    let carol = n.join(3, "carol");
    n.send(carol, "/join #dev");
    for id in [alice, bob, carol] {
        n.take(id);
    }
    n.send(alice, "/msg Carol psst, carol");
    assert_eq!(n.take(carol), vec!["*alice* psst, carol"]);
    assert_eq!(n.take(alice), vec!["-> *carol* psst, carol"]);
    assert!(n.take(bob).is_empty());
    n.send(alice, "/msg nobody hi");
    assert_eq!(n.take(alice), vec!["! no such nick: nobody"]);

    n.send(bob, "/who");
    assert_eq!(n.take(bob), vec!["* 2 in #lobby: alice, bob"]);
    n.send(bob, "/who dev");
    assert_eq!(n.take(bob), vec!["* 1 in #dev: carol"]);
    n.send(bob, "/who #empty");
    assert_eq!(n.take(bob), vec!["* nobody in #empty"]);
    n.send(bob, "/rooms");
    assert_eq!(n.take(bob), vec!["* 2 rooms: #dev (1), #lobby (2)"]);
    n.send(bob, "/help");
    assert!(n.take(bob).len() > 5);
}

#[test]
fn history_is_replayed_to_who_joins_and_bounded() {
    let mut n = Node::new(
        Config {
            history: 2,
            ..Config::default()
        },
        1,
    );
    let alice = n.join(1, "alice");
    for i in 1..=3 {
        n.send(alice, &format!("message {i}"));
    }
    let bob = n.join(2, "bob");
    assert_eq!(
        n.take(bob),
        vec![
            "<alice> message 2",
            "<alice> message 3",
            "* bob joined #lobby"
        ]
    );
    // The history of a room goes when its last member does.
    n.send(alice, "/join #elsewhere");
    n.send(bob, "/quit");
    let carol = n.join(3, "carol");
    assert_eq!(n.take(carol), vec!["* carol joined #lobby"]);
}

#[test]
fn garbage_never_reaches_other_terminals_raw() {
    let mut n = Node::local();
    let alice = n.join(1, "alice");
    let bob = n.join(2, "bob");
    n.take(bob);
    n.send_bytes(alice, b"\x1b]0;owned\x07 \xff\xfe bell\x07 tab\t \xc3\xa9");
    assert_eq!(
        n.take(bob),
        vec!["<alice> \\x1b]0;owned\\x07 \u{FFFD}\u{FFFD} bell\\x07 tab\\t \u{e9}"]
    );
    n.send_bytes(alice, b"   \t ");
    assert!(n.take(bob).is_empty(), "blank lines are ignored");
    n.take(alice);
    let mut out = Vec::new();
    n.chat.line_too_long(alice, &mut out);
    n.apply(out);
    assert_eq!(
        n.take(alice),
        vec!["! line too long (the limit is 65536 bytes): dropped"]
    );
}

#[test]
fn quitting_and_disconnecting_tell_the_room() {
    let mut n = Node::local();
    let alice = n.join(1, "alice");
    let bob = n.join(2, "bob");
    let carol = n.join(3, "carol");
    n.take(alice);
    n.take(bob);
    n.send(bob, "/quit gotta go");
    assert_eq!(n.take(bob), vec!["* bye"]);
    assert!(n.closed.contains(&bob));
    assert_eq!(n.take(alice), vec!["* bob left #lobby (gotta go)"]);
    let mut out = Vec::new();
    n.chat.disconnect(carol, Leave::TooSlow, &mut out);
    n.apply(out);
    assert_eq!(n.take(alice), vec!["* carol left #lobby (too slow)"]);
    // Their nicks are free again.
    let dave = n.join(4, "bob");
    assert_eq!(n.take(dave), vec!["* bob joined #lobby"]);
    let mut out = Vec::new();
    n.chat.shutdown(&mut out);
    n.apply(out);
    assert_eq!(n.take(alice).last().unwrap(), "* server shutting down");
    assert!(n.closed.contains(&alice) && n.closed.contains(&dave));
    assert_eq!(n.chat.client_count(), 0);
}

/// Nodes sharing a simulated backplane.
struct Cluster {
    nodes: Vec<Node>,
    /// The SET NX registry: nick key → node index.
    registry: HashMap<String, usize>,
    /// Whether node i reaches the backplane.
    up: Vec<bool>,
    now: Instant,
}

impl Cluster {
    fn new(count: usize) -> Cluster {
        let config = Config {
            scope: Scope::Cluster,
            ..Config::default()
        };
        let mut c = Cluster {
            nodes: (0..count)
                .map(|i| Node::new(config.clone(), 100 + i as u64))
                .collect(),
            registry: HashMap::new(),
            up: vec![false; count],
            now: Instant::now(),
        };
        for i in 0..count {
            c.link_up(i);
        }
        c
    }

    fn link_up(&mut self, i: usize) {
        self.up[i] = true;
        let mut out = Vec::new();
        self.nodes[i].chat.backplane_up(&mut out);
        self.nodes[i].apply(out);
        // Claim the nicks again, as the driver does.
        for (id, nick) in self.nodes[i].chat.nicks() {
            let owner = *self.registry.entry(nick.key()).or_insert(i);
            if owner != i {
                let mut out = Vec::new();
                self.nodes[i].chat.nick_lost(id, nick, &mut out);
                self.nodes[i].apply(out);
            }
        }
        self.settle();
    }

    fn link_down(&mut self, i: usize) {
        self.up[i] = false;
        let mut out = Vec::new();
        self.nodes[i].chat.backplane_down(&mut out);
        self.nodes[i].apply(out);
    }

    /// Delivers events and answers claims until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                let events = std::mem::take(&mut self.nodes[i].published);
                let claims = std::mem::take(&mut self.nodes[i].claims);
                let releases = std::mem::take(&mut self.nodes[i].released);
                moved |= !events.is_empty() || !claims.is_empty() || !releases.is_empty();
                if !self.up[i] {
                    // Cut off: publications are lost, claims granted locally.
                    for (id, nick) in claims {
                        let mut out = Vec::new();
                        self.nodes[i].chat.claimed(id, nick, true, &mut out);
                        self.nodes[i].apply(out);
                    }
                    continue;
                }
                for (id, nick) in claims {
                    let owner = *self.registry.entry(nick.key()).or_insert(i);
                    let mut out = Vec::new();
                    self.nodes[i].chat.claimed(id, nick, owner == i, &mut out);
                    self.nodes[i].apply(out);
                }
                for nick in releases {
                    if self.registry.get(&nick.key()) == Some(&i) {
                        self.registry.remove(&nick.key());
                    }
                }
                for e in events {
                    for j in 0..self.nodes.len() {
                        if self.up[j] {
                            let mut out = Vec::new();
                            self.nodes[j].chat.remote(e.clone(), self.now, &mut out);
                            self.nodes[j].apply(out);
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn join(&mut self, node: usize, id: u64, nick: &str) -> ClientId {
        let id = self.nodes[node].join(id, nick);
        self.settle();
        id
    }

    fn send(&mut self, node: usize, id: ClientId, line: &str) {
        self.nodes[node].send(id, line);
        self.settle();
    }

    fn take(&mut self, node: usize, id: ClientId) -> Vec<String> {
        self.nodes[node].take(id)
    }
}

#[test]
fn two_nodes_share_rooms_messages_who_and_private_messages() {
    let mut c = Cluster::new(2);
    let alice = c.join(0, 1, "alice");
    let bob = c.join(1, 1, "bob");
    assert_eq!(
        c.take(0, alice),
        vec!["* alice joined #lobby", "* bob joined #lobby"]
    );
    assert_eq!(c.take(1, bob), vec!["* bob joined #lobby"]);
    c.send(0, alice, "hello from node 0");
    assert_eq!(c.take(1, bob), vec!["<alice> hello from node 0"]);
    assert!(c.take(0, alice).is_empty());
    c.send(1, bob, "/who");
    assert_eq!(c.take(1, bob), vec!["* 2 in #lobby: alice, bob"]);
    c.send(1, bob, "/msg alice psst");
    assert_eq!(c.take(1, bob), vec!["-> *alice* psst"]);
    assert_eq!(c.take(0, alice), vec!["*bob* psst"]);
    c.send(1, bob, "/join #dev");
    assert_eq!(c.take(0, alice), vec!["* bob left #lobby"]);
    c.send(0, alice, "/rooms");
    assert_eq!(c.take(0, alice), vec!["* 2 rooms: #dev (1), #lobby (1)"]);
    c.send(0, alice, "not for bob");
    assert!(c.take(1, bob).iter().all(|l| !l.contains("not for bob")));
    // History crosses nodes: node 1 kept #lobby's messages although bob left it.
    let carol = c.join(1, 2, "carol");
    assert_eq!(
        c.take(1, carol),
        vec![
            "<alice> hello from node 0",
            "<alice> not for bob",
            "* carol joined #lobby"
        ]
    );
}

#[test]
fn nicks_are_unique_across_nodes() {
    let mut c = Cluster::new(2);
    let alice = c.join(0, 1, "alice");
    let other = c.join(1, 1, "Alice");
    assert_eq!(c.take(1, other), vec!["! nick Alice is taken"]);
    // A race: both nodes claim "zed" before either heard of the other's.
    c.nodes[0].send(alice, "/nick zed");
    c.nodes[1].send(other, "zed");
    c.nodes[1].send(other, "said while waiting");
    c.settle();
    let a = c.take(0, alice);
    let o = c.take(1, other);
    assert!(
        a.contains(&"* alice is now known as zed".to_owned()),
        "{a:?}"
    );
    assert_eq!(
        o,
        vec![
            "! nick zed is taken",
            "! choose a nick first: send it as a line (or /nick NAME)"
        ]
    );
    // Released on leave: the nick can be taken on the other node.
    c.send(0, alice, "/quit");
    let z = c.join(1, 2, "zed");
    assert_eq!(c.take(1, z), vec!["* zed joined #lobby"]);
}

#[test]
fn a_node_cut_off_serves_its_clients_and_converges_after() {
    let mut c = Cluster::new(2);
    let alice = c.join(0, 1, "alice");
    let bob = c.join(1, 1, "bob");
    c.take(0, alice);
    c.take(1, bob);
    c.link_down(0);
    let carol = c.join(0, 2, "carol");
    // Meanwhile node 1 grants "dave"; node 0, cut off, grants "dave" too.
    let dave1 = c.join(1, 2, "dave");
    let dave0 = c.join(0, 3, "dave");
    c.send(0, carol, "local still works");
    let seen = c.take(0, alice);
    assert!(seen[0].starts_with("* #lobby is split: "), "{seen:?}");
    assert_eq!(
        seen[1..],
        [
            "* carol joined #lobby",
            "* dave joined #lobby",
            "<carol> local still works"
        ]
    );
    // Only the node that lost its link says so.
    assert!(
        c.take(1, bob)
            .iter()
            .all(|l| !l.contains("carol") && !l.contains("split"))
    );
    // Node 0 forgets node 1 once it has been silent long enough.
    c.now += Duration::from_secs(8);
    c.nodes[0].chat.tick(c.now);
    c.send(0, alice, "/who");
    assert_eq!(c.take(0, alice), vec!["* 3 in #lobby: alice, carol, dave"]);
    c.take(0, carol);
    c.take(0, dave0);
    c.link_up(0);
    let lost = c.take(0, dave0);
    assert_eq!(lost[0], "* #lobby is whole again");
    assert!(
        lost[1].starts_with("! nick dave belongs to someone on another node"),
        "{lost:?}"
    );
    assert!(c.take(1, dave1).iter().all(|l| !l.starts_with('!')));
    assert_eq!(c.take(1, bob), vec!["* dave is now known as guest3"]);
    c.send(1, bob, "/who");
    assert_eq!(
        c.take(1, bob),
        vec!["* 5 in #lobby: alice, bob, carol, dave, guest3"]
    );
    c.send(1, bob, "back together");
    assert_eq!(
        c.take(0, carol),
        vec![
            "* #lobby is whole again",
            "* dave is now known as guest3",
            "<bob> back together"
        ]
    );
    assert_eq!(c.take(0, alice)[0], "* #lobby is whole again");
}

//! The Redis backplane: how chat servers sharing one Redis become one chat.
//!
//! - **Events** (see [`crate::proto::chat::event`]) are appended to the Redis Stream
//!   [`STREAM`] (`XADD`, trimmed to about [`RETENTION`] entries); every node reads it
//!   from the last entry it applied (`XREAD BLOCK`) and applies the others' events.
//!
//!   Why a stream and not pub/sub: a pub/sub message reaches only the subscribers
//!   connected at that instant. When Redis came back after an outage, the nodes
//!   reconnected at different moments, and lines published by one node before another
//!   had subscribed again were lost without a word (hundreds in a 2 s outage). A stream
//!   keeps the entries: a node that reconnects reads everything appended since the last
//!   entry it saw, so once Redis is back nothing is lost, whichever node comes back
//!   first. The stream is trimmed to [`RETENTION`] entries, so a node cut off for longer
//!   than that many events misses the oldest of them.
//! - **Split and whole again**: when a node loses Redis after having had it, its members
//!   are told their rooms are split (lines said there do not reach the other servers, nor
//!   theirs them; those lines are not delivered later). Once the node is connected again
//!   and has read what the others appended meanwhile, they are told the room is whole
//!   again: from then on, nothing said on any node is lost to them.
//! - **Nicks** are claimed with an atomic script — `SET key node` if the key is absent or
//!   already this node's — on `sockit:chat:nick:<nick in lower case>`, with a TTL of
//!   [`NICK_TTL`] that the node refreshes while it holds the nick, and deleted (only if
//!   still this node's) when released. A node that dies loses its nicks after the TTL.
//! - **Heartbeat**: every [`HEARTBEAT`] the node publishes its snapshot and forgets the
//!   nodes it has not heard from (see [`Chat::tick`](crate::proto::chat::Chat::tick)).
//! - **Losing Redis** (connection closed, a command failing or not answered within
//!   [`TIMEOUT`]): the node goes on serving its own clients, answers nick claims locally,
//!   keeps the releases it owes, and reconnects with exponential back-off (100 ms doubling
//!   to 5 s). Once connected again it resubscribes, publishes its snapshot asking the
//!   others for theirs, pays its releases and claims its nicks again; a nick another node
//!   took meanwhile is given up ([`Chat::nick_lost`](crate::proto::chat::Chat::nick_lost)).

use std::time::{Duration, Instant};

use std::cell::RefCell;
use std::rc::Rc;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadReply};
use tokio::sync::mpsc;

use super::hub::Shared;
use crate::proto::chat::{ClientId, Event, HEARTBEAT, NickName, NodeId};

/// The stream every node appends its events to and reads the others' from.
pub const STREAM: &str = "sockit:chat:events";

/// Entries the stream keeps (approximately: `XADD ... MAXLEN ~`). At 1,000 events a second
/// that is over a minute and a half of catching up for a node that lost Redis, in ten to
/// twenty MB of Redis memory.
pub const RETENTION: usize = 100_000;

/// How long one `XREAD` waits for new entries before asking again.
const BLOCK: Duration = Duration::from_secs(2);

/// Entries read per `XREAD`.
const READ_COUNT: usize = 1024;

/// Prefix of the nick keys.
pub const NICK_PREFIX: &str = "sockit:chat:nick:";

/// How long a nick key lives unless refreshed.
pub const NICK_TTL: Duration = Duration::from_secs(30);

/// Heartbeats between two refreshes of the nick keys.
const REFRESH_EVERY: u32 = 5;

/// The longest wait for Redis to connect or answer before it counts as lost. (A Redis that
/// died is noticed at once, by its connection closing; this is for one that hangs.)
pub const TIMEOUT: Duration = Duration::from_secs(5);

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Releases remembered while Redis is away; beyond this the TTL will have to do.
const MAX_OWED_RELEASES: usize = 100_000;

/// Commands per pipeline round trip.
const BATCH: usize = 512;

/// Set the key to this node if it is free or already ours; 1 if it is ours now.
const CLAIM: &str = "local v = redis.call('GET', KEYS[1]) \
    if v == false or v == ARGV[1] then \
      redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1 \
    end return 0";

/// Delete the key if it is this node's.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
      return redis.call('DEL', KEYS[1]) \
    end return 0";

/// What the hub asks of the backplane.
#[derive(Debug)]
pub(super) enum Cmd {
    /// Publish an encoded event.
    Publish(String),
    /// Claim a nick for a client; the answer goes to [`super::hub::Hub::claimed`].
    Claim { client: ClientId, nick: NickName },
    /// Release a nick.
    Release(NickName),
    /// The server is stopping: finish what is queued, then end.
    Stop,
}

/// Why a session with Redis ended.
enum End {
    Stopped,
    Lost(String),
}

/// Runs the backplane until [`Cmd::Stop`].
pub(super) async fn run(
    client: redis::Client,
    hub: Shared,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    node: NodeId,
) {
    let mut owed = Vec::new();
    let mut backoff = MIN_BACKOFF;
    let mut was_up = false;
    // The last stream entry applied: where reading resumes after Redis comes back.
    let cursor = Rc::new(RefCell::new(None));
    loop {
        let started = Instant::now();
        let lost = match session(
            &client,
            &hub,
            &mut rx,
            node,
            &mut owed,
            &mut was_up,
            &cursor,
        )
        .await
        {
            End::Stopped => return,
            End::Lost(why) => why,
        };
        hub.borrow_mut().backplane_down();
        if was_up {
            tracing::warn!("lost redis ({lost}); serving local clients, reconnecting");
            was_up = false;
        } else {
            tracing::debug!("redis unavailable ({lost}); retrying in {backoff:?}");
        }
        if started.elapsed() > MAX_BACKOFF * 2 {
            backoff = MIN_BACKOFF;
        }
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                cmd = rx.recv() => match cmd {
                    None | Some(Cmd::Stop) => return,
                    Some(cmd) => offline(cmd, &hub, &mut owed),
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A command while Redis is away: publications are lost (the members were told their
/// rooms are split; the snapshot after reconnecting repairs membership), claims are
/// granted locally, releases are owed.
fn offline(cmd: Cmd, hub: &Shared, owed: &mut Vec<NickName>) {
    match cmd {
        Cmd::Publish(_) | Cmd::Stop => {}
        Cmd::Claim { client, nick } => hub.borrow_mut().claimed(client, nick, true),
        Cmd::Release(nick) => {
            if owed.len() < MAX_OWED_RELEASES {
                owed.push(nick);
            }
        }
    }
}

/// One connection to Redis, from connecting to losing it (or stopping).
async fn session(
    client: &redis::Client,
    hub: &Shared,
    rx: &mut mpsc::UnboundedReceiver<Cmd>,
    node: NodeId,
    owed: &mut Vec<NickName>,
    was_up: &mut bool,
    cursor: &Cursor,
) -> End {
    let connect = async {
        // The client's own 500 ms response timeout would call Redis lost whenever this
        // node is busy (the answer waits for the node's one thread, not for Redis):
        // `timed` bounds every call instead.
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(None);
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // A blocked XREAD holds its connection: it gets one of its own.
        let reader = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok::<_, redis::RedisError>((conn, reader))
    };
    let (mut conn, mut reader) = match tokio::time::timeout(TIMEOUT, connect).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return End::Lost(e.to_string()),
        Err(_) => return End::Lost("connecting timed out".into()),
    };
    let node_id = node.to_string();
    for nick in std::mem::take(owed) {
        if let Err(e) = release(&mut conn, &node_id, &nick).await {
            owed.push(nick);
            return End::Lost(e);
        }
    }
    // Where to read from: where this node stopped, or (the first time) the stream's end.
    if cursor.borrow().is_none() {
        match last_entry(&mut conn).await {
            Ok(id) => *cursor.borrow_mut() = Some(id),
            Err(e) => return End::Lost(e),
        }
    }
    // Catch up with what the others appended while this node was away, before telling
    // anyone the room is whole again.
    loop {
        match read(&mut reader, hub, cursor, None).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return End::Lost(e),
        }
    }
    hub.borrow_mut().backplane_up();
    *was_up = true;
    tracing::info!("connected to redis; node {node}");
    if let Err(e) = reclaim(&mut conn, hub, &node_id).await {
        return End::Lost(e);
    }
    let mut follow = tokio::task::spawn_local(follow(reader, hub.clone(), cursor.clone()));
    let end = serve(&mut conn, hub, rx, &node_id, owed, &mut follow).await;
    follow.abort();
    end
}

/// The session's work once connected and caught up: commands from the hub, heartbeats,
/// and watching the reading task.
async fn serve(
    conn: &mut MultiplexedConnection,
    hub: &Shared,
    rx: &mut mpsc::UnboundedReceiver<Cmd>,
    node_id: &str,
    owed: &mut Vec<NickName>,
    follow: &mut tokio::task::JoinHandle<String>,
) -> End {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    let mut beats = 0u32;
    loop {
        tokio::select! {
            why = &mut *follow => {
                return End::Lost(why.unwrap_or_else(|e| format!("reader task: {e}")));
            }
            cmd = rx.recv() => {
                let mut batch = vec![cmd.unwrap_or(Cmd::Stop)];
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(cmd) => batch.push(cmd),
                        Err(_) => break,
                    }
                }
                if let Some(end) = execute(conn, hub, node_id, batch, owed).await {
                    return end;
                }
            }
            _ = heartbeat.tick() => {
                beats = beats.wrapping_add(1);
                let snapshot = hub.borrow().core.snapshot(false).encode();
                hub.borrow_mut().core.tick(Instant::now());
                let published = publish(conn, vec![snapshot]).await;
                if let Err(e) = published {
                    return End::Lost(e);
                }
                if beats.is_multiple_of(REFRESH_EVERY)
                    && let Err(e) = reclaim(conn, hub, node_id).await
                {
                    return End::Lost(e);
                }
            }
        }
    }
}

/// The id of the last stream entry applied (`None` before the first connection).
type Cursor = Rc<RefCell<Option<String>>>;

/// Reads the stream as it grows, applying each entry, until Redis fails; says why.
async fn follow(mut reader: MultiplexedConnection, hub: Shared, cursor: Cursor) -> String {
    loop {
        if let Err(e) = read(&mut reader, &hub, &cursor, Some(BLOCK)).await {
            return e;
        }
    }
}

/// One `XREAD` from the cursor (blocking up to `block`): applies the entries, moves the
/// cursor past them, and says how many there were.
async fn read(
    conn: &mut MultiplexedConnection,
    hub: &Shared,
    cursor: &Cursor,
    block: Option<Duration>,
) -> Result<usize, String> {
    let from = cursor.borrow().clone().unwrap_or_else(|| "0-0".into());
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT").arg(READ_COUNT);
    if let Some(block) = block {
        cmd.arg("BLOCK").arg(block.as_millis() as u64);
    }
    cmd.arg("STREAMS").arg(STREAM).arg(&from);
    let reply: Option<StreamReadReply> = timed(cmd.query_async(conn)).await?;
    let entries = reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .collect::<Vec<_>>();
    let count = entries.len();
    let now = Instant::now();
    for entry in entries {
        match entry.map.get("e").and_then(|v| match v {
            redis::Value::BulkString(b) => Event::decode(b),
            _ => None,
        }) {
            Some(event) => hub.borrow_mut().remote(event, now),
            None => tracing::debug!(id = %entry.id, "ignoring a malformed entry on {STREAM}"),
        }
        *cursor.borrow_mut() = Some(entry.id);
    }
    Ok(count)
}

/// The id of the stream's last entry (`0-0` if it has none yet).
async fn last_entry(conn: &mut MultiplexedConnection) -> Result<String, String> {
    let mut cmd = redis::cmd("XREVRANGE");
    cmd.arg(STREAM).arg("+").arg("-").arg("COUNT").arg(1);
    let reply: StreamRangeReply = timed(cmd.query_async(conn)).await?;
    Ok(reply
        .ids
        .into_iter()
        .next()
        .map_or_else(|| "0-0".into(), |e| e.id))
}

/// Carries out a batch of commands in order: publications and releases pipelined, claims
/// one round trip each (their answers matter). `Some` ends the session.
async fn execute(
    conn: &mut MultiplexedConnection,
    hub: &Shared,
    node_id: &str,
    batch: Vec<Cmd>,
    owed: &mut Vec<NickName>,
) -> Option<End> {
    let mut pipe = redis::pipe();
    let mut queued: Vec<NickName> = Vec::new();
    let mut pending = 0usize;
    let mut cmds = batch.into_iter();
    while let Some(cmd) = cmds.next() {
        match cmd {
            Cmd::Publish(payload) => {
                append(&mut pipe, payload);
                pending += 1;
            }
            Cmd::Release(nick) => {
                pipe.cmd("EVAL")
                    .arg(RELEASE)
                    .arg(1)
                    .arg(key(&nick))
                    .arg(node_id)
                    .ignore();
                queued.push(nick);
                pending += 1;
            }
            other @ (Cmd::Claim { .. } | Cmd::Stop) => {
                if pending > 0 {
                    if let Err(e) = run_pipe(conn, &pipe).await {
                        owed.append(&mut queued);
                        offline(other, hub, owed);
                        cmds.for_each(|c| offline(c, hub, owed));
                        return Some(End::Lost(e));
                    }
                    pipe = redis::pipe();
                    queued.clear();
                    pending = 0;
                }
                let Cmd::Claim { client, nick } = other else {
                    return Some(End::Stopped);
                };
                match claim(conn, node_id, &nick).await {
                    Ok(granted) => hub.borrow_mut().claimed(client, nick, granted),
                    Err(e) => {
                        // Cut off mid-claim: granted locally, claimed again on reconnection.
                        hub.borrow_mut().claimed(client, nick, true);
                        cmds.for_each(|c| offline(c, hub, owed));
                        return Some(End::Lost(e));
                    }
                }
            }
        }
    }
    if pending > 0
        && let Err(e) = run_pipe(conn, &pipe).await
    {
        owed.append(&mut queued);
        return Some(End::Lost(e));
    }
    None
}

/// Claims every nick of this node again (one pipelined round trip); those another node
/// holds are given up.
async fn reclaim(
    conn: &mut MultiplexedConnection,
    hub: &Shared,
    node_id: &str,
) -> Result<(), String> {
    let nicks = hub.borrow().core.nicks();
    if nicks.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (_, nick) in &nicks {
        pipe.cmd("EVAL")
            .arg(CLAIM)
            .arg(1)
            .arg(key(nick))
            .arg(node_id)
            .arg(NICK_TTL.as_secs());
    }
    let answers: Vec<i64> = timed(pipe.query_async(conn)).await?;
    for ((id, nick), answer) in nicks.into_iter().zip(answers) {
        if answer != 1 {
            tracing::info!(%nick, "nick held by another node; giving it up");
            hub.borrow_mut().nick_lost(id, nick);
        }
    }
    Ok(())
}

fn key(nick: &NickName) -> String {
    format!("{NICK_PREFIX}{}", nick.key())
}

async fn claim(
    conn: &mut MultiplexedConnection,
    node_id: &str,
    nick: &NickName,
) -> Result<bool, String> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(CLAIM)
        .arg(1)
        .arg(key(nick))
        .arg(node_id)
        .arg(NICK_TTL.as_secs());
    let answer: i64 = timed(cmd.query_async(conn)).await?;
    Ok(answer == 1)
}

async fn release(
    conn: &mut MultiplexedConnection,
    node_id: &str,
    nick: &NickName,
) -> Result<(), String> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(RELEASE).arg(1).arg(key(nick)).arg(node_id);
    let _: i64 = timed(cmd.query_async(conn)).await?;
    Ok(())
}

async fn publish(conn: &mut MultiplexedConnection, payloads: Vec<String>) -> Result<(), String> {
    let mut pipe = redis::pipe();
    for p in payloads {
        append(&mut pipe, p);
    }
    run_pipe(conn, &pipe).await
}

/// `XADD` of one event to the stream, trimming it to about [`RETENTION`] entries.
fn append(pipe: &mut redis::Pipeline, payload: String) {
    pipe.cmd("XADD")
        .arg(STREAM)
        .arg("MAXLEN")
        .arg("~")
        .arg(RETENTION)
        .arg("*")
        .arg("e")
        .arg(payload)
        .ignore();
}

async fn run_pipe(conn: &mut MultiplexedConnection, pipe: &redis::Pipeline) -> Result<(), String> {
    timed(pipe.exec_async(conn)).await
}

/// Bounds a Redis call by [`TIMEOUT`]; a Redis that does not answer counts as lost.
async fn timed<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {TIMEOUT:?}")),
    }
}

//! The cluster's state in Redis: node records, the set of nodes, and room owners with their epochs.
//! Every read-modify-write is one Lua script, so it is atomic on the Redis server: two nodes that
//! place the same room at once cannot both win, and a node can never delete or overwrite a room
//! another live node owns (docs/cluster.md, "Why these scripts").
//!
//! The connection is `redis`'s `ConnectionManager`, made lazily: a node starts while Redis is
//! away, every command fails fast (the response timeout) instead of hanging, and the manager
//! reconnects by itself.

use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubStream};
use redis::Script;

use crate::control::ControlMsg;
use crate::error::ClusterError;
use crate::keys::{Keys, EVENTS_KEPT};
use crate::node::NodeInfo;

/// Whether a node still holds a room it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// It owns it at the epoch it serves.
    Yes,
    /// Another node or a later epoch has it, or it was given up: stop serving it.
    Lost,
    /// Redis has nothing of it (it lost its data): put it back.
    Vanished,
}

/// A room's owner as Redis has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// The owner node's id.
    pub node: String,
    /// The fencing token: grows by one with every new owner.
    pub epoch: u64,
}

/// The lists of live nodes: ids whose record expired are dropped from the set on the way.
/// Returns {record, rooms placed} per live node (the count from hash KEYS[2]).
const LIST_NODES: &str = r"
local ids = redis.call('SMEMBERS', KEYS[1])
local out = {}
for _, id in ipairs(ids) do
  local v = redis.call('GET', ARGV[1] .. id)
  if v then
    table.insert(out, {v, tonumber(redis.call('HGET', KEYS[2], id) or '0')})
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return out
";

/// Claims a room (owner hash KEYS[1]) for ARGV[1] unless another node whose record still exists
/// owns it; a claim bumps the epoch (which is never reset while the key lives) and moves the room's
/// count in the placed hash KEYS[2]. Returns {owner, epoch, claimed}.
const CLAIM_ROOM: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'node', 'epoch')
if cur[1] and cur[1] ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. cur[1]) == 1 then
  return {cur[1], cur[2], 0}
end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'node', ARGV[1])
redis.call('PERSIST', KEYS[1])
if cur[1] ~= ARGV[1] then
  if cur[1] then redis.call('HINCRBY', KEYS[2], cur[1], -1) end
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
return {ARGV[1], tostring(epoch), 1}
";

/// Moves a room from ARGV[1] at epoch ARGV[2] (a node known dead) to ARGV[3], only if the owner is
/// still exactly that. Returns {owner, epoch, moved}.
const TAKE_OVER: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'node', 'epoch')
if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then
  return {cur[1] or '', cur[2] or '0', 0}
end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'node', ARGV[3])
redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
return {ARGV[3], tostring(epoch), 1}
";

/// Gives a room up, only if ARGV[1] still owns it at epoch ARGV[2]: the owner field goes, the epoch
/// stays (for a day, so the next owner's epoch is larger than any a paused node may still hold).
const RELEASE_ROOM: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'node', 'epoch')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then
  redis.call('HDEL', KEYS[1], 'node')
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
  return 1
end
return 0
";

/// Puts back room ARGV[4] for node ARGV[1] at epoch ARGV[2] (owner KEYS[1], placed counts KEYS[2]),
/// and its document ARGV[3] (KEYS[3], in set KEYS[4]) if that is gone, only where the owner entry
/// is gone entirely. Returns {owner, epoch, restored}.
const RESTORE_ROOM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  local cur = redis.call('HMGET', KEYS[1], 'node', 'epoch')
  return {cur[1] or '', cur[2] or '0', 0}
end
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'epoch', ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('HSET', KEYS[3], 'v', 1, 'doc', ARGV[3])
end
redis.call('SADD', KEYS[4], ARGV[4])
return {ARGV[1], ARGV[2], 1}
";

/// How long a released room's epoch is remembered.
pub(crate) const EPOCH_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// A connection to the cluster's Redis.
#[derive(Clone)]
pub struct ClusterStore {
    client: redis::Client,
    pub(crate) con: ConnectionManager,
    pub(crate) keys: Keys,
}

/// The control messages sent to one node, as they arrive.
pub struct ControlInbox {
    stream: PubSubStream,
}

impl ControlInbox {
    /// The next message; `None` when the subscription ended (Redis went away: subscribe again).
    /// A message that does not parse is an `Err` and the inbox goes on.
    pub async fn next(&mut self) -> Option<Result<ControlMsg, String>> {
        let msg = self.stream.next().await?;
        Some(ControlMsg::parse(msg.get_payload_bytes()).map_err(|e| e.to_string()))
    }
}

impl std::fmt::Debug for ClusterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl ClusterStore {
    /// A store on the Redis at `url` (`redis://host:port[/db]`), keys under `keys`, each command
    /// answered within `timeout` or failed. Connects lazily: an unreachable Redis is not an error
    /// here, only a bad URL is. Call it inside a tokio runtime (the manager spawns its task there).
    pub fn open(url: &str, keys: Keys, timeout: Duration) -> Result<Self, ClusterError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let con = client.get_connection_manager_lazy(config)?;
        Ok(Self { client, con, keys })
    }

    /// The key names.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// An epoch as a script returned it (a string: Lua numbers are floats).
    fn parse_epoch(&self, room: &str, epoch: &str) -> Result<u64, ClusterError> {
        epoch.parse().map_err(|_| ClusterError::BadRecord {
            key: self.keys.room_owner(room),
            reason: format!("epoch {epoch:?} is not a number"),
        })
    }

    /// Writes this node's record, alive for `ttl` unless written again.
    pub async fn register(&self, node: &NodeInfo, ttl: Duration) -> Result<(), ClusterError> {
        let json = serde_json::to_string(node).map_err(|e| ClusterError::BadRecord {
            key: self.keys.node(&node.id),
            reason: e.to_string(),
        })?;
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(self.keys.node(&node.id))
            .arg(json)
            .arg("PX")
            .arg(ms)
            .ignore()
            .cmd("SADD")
            .arg(self.keys.nodes())
            .arg(&node.id)
            .ignore()
            .query_async::<()>(&mut self.con.clone())
            .await?;
        Ok(())
    }

    /// Removes this node's record at once (a clean stop), so nobody waits for it to expire.
    pub async fn deregister(&self, id: &str) -> Result<(), ClusterError> {
        redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(self.keys.node(id))
            .ignore()
            .cmd("SREM")
            .arg(self.keys.nodes())
            .arg(id)
            .ignore()
            .query_async::<()>(&mut self.con.clone())
            .await?;
        Ok(())
    }

    /// Every live node's record, sorted by id.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let raw: Vec<(String, i64)> = Script::new(LIST_NODES)
            .key(self.keys.nodes())
            .key(self.keys.placed())
            .arg(self.keys.node_prefix())
            .invoke_async(&mut self.con.clone())
            .await?;
        let mut nodes = raw
            .iter()
            .map(|(json, rooms)| {
                let mut n = serde_json::from_str::<NodeInfo>(json).map_err(|e| {
                    ClusterError::BadRecord {
                        key: self.keys.nodes(),
                        reason: e.to_string(),
                    }
                })?;
                n.load.rooms = u32::try_from((*rooms).max(0)).unwrap_or(u32::MAX);
                Ok(n)
            })
            .collect::<Result<Vec<_>, ClusterError>>()?;
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    /// Claims `room` for node `node` unless another live node owns it. `Ok((owner, claimed))`:
    /// the room's owner afterwards, and whether this call made `node` its owner (with a new epoch).
    pub async fn claim_room(
        &self,
        room: &str,
        node: &str,
    ) -> Result<(Ownership, bool), ClusterError> {
        let (owner, epoch, claimed): (String, String, u8) = Script::new(CLAIM_ROOM)
            .key(self.keys.room_owner(room))
            .key(self.keys.placed())
            .arg(node)
            .arg(self.keys.node_prefix())
            .invoke_async(&mut self.con.clone())
            .await?;
        let epoch = self.parse_epoch(room, &epoch)?;
        Ok((Ownership { node: owner, epoch }, claimed == 1))
    }

    /// Moves `room` from `dead`, which owned it at `epoch` and is known to be gone (its port refuses
    /// connections) though its record has not expired yet, to `node`, with a new epoch. Only if
    /// `dead` still owns it at exactly `epoch`; `Ok((owner, moved))` as [`Self::claim_room`].
    pub async fn take_over(
        &self,
        room: &str,
        dead: &Ownership,
        node: &str,
    ) -> Result<(Ownership, bool), ClusterError> {
        let (owner, epoch, moved): (String, String, u8) = Script::new(TAKE_OVER)
            .key(self.keys.room_owner(room))
            .key(self.keys.placed())
            .arg(&dead.node)
            .arg(dead.epoch.to_string())
            .arg(node)
            .invoke_async(&mut self.con.clone())
            .await?;
        let epoch = epoch.parse().unwrap_or(0);
        Ok((Ownership { node: owner, epoch }, moved == 1))
    }

    /// Writes what `room`'s core offers edge `edge` for their relay leg (JSON), kept for `ttl`.
    pub async fn put_leg(
        &self,
        room: &str,
        edge: &str,
        offer: &str,
        ttl: Duration,
    ) -> Result<(), ClusterError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        redis::cmd("SET")
            .arg(self.keys.room_leg(room, edge))
            .arg(offer)
            .arg("PX")
            .arg(ms)
            .query_async::<()>(&mut self.con.clone())
            .await?;
        Ok(())
    }

    /// What `room`'s core offers edge `edge`, if anything.
    pub async fn leg(&self, room: &str, edge: &str) -> Result<Option<String>, ClusterError> {
        Ok(redis::cmd("GET")
            .arg(self.keys.room_leg(room, edge))
            .query_async(&mut self.con.clone())
            .await?)
    }

    /// Takes a leg offer back (the leg was dropped).
    pub async fn delete_leg(&self, room: &str, edge: &str) -> Result<(), ClusterError> {
        redis::cmd("DEL")
            .arg(self.keys.room_leg(room, edge))
            .query_async::<()>(&mut self.con.clone())
            .await?;
        Ok(())
    }

    /// Replaces what node `node` says of the sources it publishes in `room` (SSRC and
    /// participant), kept for `ttl` unless written again.
    pub async fn put_sources(
        &self,
        room: &str,
        node: &str,
        sources: &[(u32, String)],
        ttl: Duration,
    ) -> Result<(), ClusterError> {
        let key = self.keys.room_sources(room, node);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("DEL").arg(&key).ignore();
        if !sources.is_empty() {
            let hset = pipe.cmd("HSET").arg(&key);
            for (ssrc, participant) in sources {
                hset.arg(ssrc).arg(participant);
            }
            hset.ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(ms).ignore();
        }
        pipe.query_async::<()>(&mut self.con.clone()).await?;
        Ok(())
    }

    /// What each of `nodes` says of the sources it publishes in `room`, all in one list.
    pub async fn sources(
        &self,
        room: &str,
        nodes: &[String],
    ) -> Result<Vec<(u32, String)>, ClusterError> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for n in nodes {
            pipe.cmd("HGETALL").arg(self.keys.room_sources(room, n));
        }
        let all: Vec<Vec<(u32, String)>> = pipe.query_async(&mut self.con.clone()).await?;
        Ok(all.into_iter().flatten().collect())
    }

    /// The room's owner, if it has one (a live one or not).
    pub async fn owner(&self, room: &str) -> Result<Option<Ownership>, ClusterError> {
        let (node, epoch): (Option<String>, Option<u64>) = redis::cmd("HMGET")
            .arg(self.keys.room_owner(room))
            .arg("node")
            .arg("epoch")
            .query_async(&mut self.con.clone())
            .await?;
        Ok(match (node, epoch) {
            (Some(node), Some(epoch)) => Some(Ownership { node, epoch }),
            _ => None,
        })
    }

    /// For each `(room, epoch)` this node serves, whether it still holds it (one round trip): a
    /// [`Held::Lost`] room was taken by another node (stop serving it at once); a
    /// [`Held::Vanished`] one has no owner entry at all, not even a remembered epoch (Redis lost
    /// its data: put the room back with [`Self::restore_room`]).
    pub async fn held(
        &self,
        node: &str,
        rooms: &[(String, u64)],
    ) -> Result<Vec<Held>, ClusterError> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (room, _) in rooms {
            pipe.cmd("HMGET")
                .arg(self.keys.room_owner(room))
                .arg("node")
                .arg("epoch");
        }
        let got: Vec<(Option<String>, Option<u64>)> =
            pipe.query_async(&mut self.con.clone()).await?;
        Ok(got
            .into_iter()
            .zip(rooms)
            .map(|(owner, (_, mine))| match owner {
                (None, None) => Held::Vanished,
                (Some(o), Some(e)) if o == node && e == *mine => Held::Yes,
                _ => Held::Lost,
            })
            .collect())
    }

    /// Puts back room `room`, served by `node` at `epoch`, after Redis lost its data (restarted
    /// empty): its owner entry, its count, and its document `doc` where that is gone too. Only if
    /// the room has no owner entry at all; else the owner it has comes back (`restored` false).
    pub async fn restore_room(
        &self,
        room: &str,
        node: &str,
        epoch: u64,
        doc: &str,
    ) -> Result<(Ownership, bool), ClusterError> {
        let (owner, epoch, restored): (String, String, u8) = Script::new(RESTORE_ROOM)
            .key(self.keys.room_owner(room))
            .key(self.keys.placed())
            .key(self.keys.room(room))
            .key(self.keys.rooms())
            .arg(node)
            .arg(epoch)
            .arg(doc)
            .arg(room)
            .invoke_async(&mut self.con.clone())
            .await?;
        let epoch = self.parse_epoch(room, &epoch)?;
        Ok((Ownership { node: owner, epoch }, restored == 1))
    }

    /// Gives `room` up if `node` still owns it at `epoch`; true if it did. Never touches a room
    /// another node (or a later epoch of this one) owns.
    pub async fn release_room(
        &self,
        room: &str,
        node: &str,
        epoch: u64,
    ) -> Result<bool, ClusterError> {
        let released: u8 = Script::new(RELEASE_ROOM)
            .key(self.keys.room_owner(room))
            .key(self.keys.placed())
            .arg(node)
            .arg(epoch.to_string())
            .arg(u64::try_from(EPOCH_MEMORY.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(released == 1)
    }

    /// Appends one room event to the cluster's event stream (capped near [`EVENTS_KEPT`]); returns
    /// its stream id.
    pub async fn append_event(
        &self,
        event: &str,
        room: &str,
        node: &str,
        body: &str,
    ) -> Result<String, ClusterError> {
        let id: String = redis::cmd("XADD")
            .arg(self.keys.events())
            .arg("MAXLEN")
            .arg("~")
            .arg(EVENTS_KEPT)
            .arg("*")
            .arg("event")
            .arg(event)
            .arg("room")
            .arg(room)
            .arg("node")
            .arg(node)
            .arg("body")
            .arg(body)
            .query_async(&mut self.con.clone())
            .await?;
        Ok(id)
    }

    /// Subscribes to node `node`'s control channel.
    pub async fn control_inbox(&self, node: &str) -> Result<ControlInbox, ClusterError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(self.keys.control(node)).await?;
        Ok(ControlInbox {
            stream: pubsub.into_on_message(),
        })
    }

    /// Publishes `msg` on node `node`'s control channel; how many subscribers got it (0: the node
    /// is not listening).
    pub async fn send_control(&self, node: &str, msg: &ControlMsg) -> Result<u64, ClusterError> {
        let n: u64 = redis::cmd("PUBLISH")
            .arg(self.keys.control(node))
            .arg(msg.to_json())
            .query_async(&mut self.con.clone())
            .await?;
        Ok(n)
    }
}

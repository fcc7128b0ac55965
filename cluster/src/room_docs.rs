//! Rooms in Redis: each room's settings and participants as one JSON document with a version
//! (`{prefix}room:{name}`, a hash `{v, doc}`), the set of room names, and the live summary the
//! owner writes with every refresh (`{prefix}room:{name}:live`, expiring). The document's format
//! belongs to the control plane (its room rules run on it); here it is opaque text. Every write is
//! a compare-and-set on the version (one Lua script), so two nodes changing one room at once cannot
//! both win: the loser reads again and re-applies its rule, exactly as two requests on one node
//! are serialised by a lock. Deleting is a script that refuses while another live node owns the
//! room: nothing here ever deletes a room alive on another node (livekit/livekit#4316).

use redis::Script;

use crate::error::ClusterError;
use crate::store::{ClusterStore, Ownership, EPOCH_MEMORY};

/// A room's document as stored, with its version and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomDoc {
    /// Grows by one with every write.
    pub version: u64,
    /// The control plane's JSON.
    pub doc: String,
    /// The owner and epoch, where the room has been placed.
    pub owner: Option<Ownership>,
    /// The live summary its owner last wrote (the control plane's JSON), if fresh.
    pub live: Option<String>,
}

/// What a compare-and-set write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Written: the new version.
    Written(u64),
    /// Someone else wrote first (or the room was created or deleted meanwhile): read it again.
    Stale,
    /// The write was for an owner at an epoch that no longer holds the room: nothing written.
    Fenced,
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// The room and its owner entry are gone (the epoch is remembered).
    Deleted,
    /// There was no such room.
    NotFound,
    /// Another live node owns it: ask that node (its id).
    OwnedBy(String),
}

/// Writes ARGV[2] as the document of KEYS[1] if its version is ARGV[1] ('' : only if it does not
/// exist), bumps the version and adds ARGV[3] to the set KEYS[2]. With ARGV[4] (a node) only while
/// the owner entry KEYS[3] names that node at epoch ARGV[5]. Returns the new version, -1 (another
/// version) or -2 (fenced: the room has another owner or epoch).
const PUT_ROOM: &str = r"
if ARGV[4] ~= '' then
  local o = redis.call('HMGET', KEYS[3], 'node', 'epoch')
  if o[1] ~= ARGV[4] or o[2] ~= ARGV[5] then return -2 end
end
local v = redis.call('HGET', KEYS[1], 'v')
if ARGV[1] == '' then
  if v then return -1 end
elseif v ~= ARGV[1] then
  return -1
end
local nv = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'doc', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return nv
";

/// Deletes room ARGV[4] (document KEYS[1], set KEYS[2], owner KEYS[3], placed counts KEYS[4]) for
/// node ARGV[1], unless
/// another node whose record (prefix ARGV[2]) exists owns it. Returns {code, owner}: 0 none, 1
/// deleted, 2 owned by owner.
const DELETE_ROOM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[4])
  return {0, ''}
end
local owner = redis.call('HGET', KEYS[3], 'node')
if owner and owner ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. owner) == 1 then
  return {2, owner}
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[4])
if owner then
  redis.call('HDEL', KEYS[3], 'node')
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
  redis.call('HINCRBY', KEYS[4], owner, -1)
end
return {1, ''}
";

/// Every room's document and live summary ('' if none) (names from set KEYS[1], hashes under
/// prefix ARGV[1]); names whose hash is gone are dropped from the set on the way. Returns them in
/// pairs.
const LIST_ROOMS: &str = r"
local names = redis.call('SMEMBERS', KEYS[1])
local out = {}
for _, name in ipairs(names) do
  local doc = redis.call('HGET', ARGV[1] .. name, 'doc')
  if doc then
    table.insert(out, doc)
    table.insert(out, redis.call('GET', ARGV[1] .. name .. ':live') or '')
  else
    redis.call('SREM', KEYS[1], name)
  end
end
return out
";

impl ClusterStore {
    /// Room `room`'s document, version and owner (one round trip), or `None`.
    pub async fn room_doc(&self, room: &str) -> Result<Option<RoomDoc>, ClusterError> {
        type Raw = (
            (Option<u64>, Option<String>),
            (Option<String>, Option<u64>),
            Option<String>,
        );
        let ((version, doc), (node, epoch), live): Raw = redis::pipe()
            .cmd("HMGET")
            .arg(self.keys.room(room))
            .arg("v")
            .arg("doc")
            .cmd("HMGET")
            .arg(self.keys.room_owner(room))
            .arg("node")
            .arg("epoch")
            .cmd("GET")
            .arg(self.keys.room_live(room))
            .query_async(&mut self.con.clone())
            .await?;
        Ok(match (version, doc) {
            (Some(version), Some(doc)) => Some(RoomDoc {
                version,
                doc,
                owner: match (node, epoch) {
                    (Some(node), Some(epoch)) => Some(Ownership { node, epoch }),
                    _ => None,
                },
                live,
            }),
            _ => None,
        })
    }

    /// Writes `doc` as room `room`'s document if its version is still `expected` (`None`: only if
    /// the room does not exist) and, with `as_owner`, only while that node still owns the room at
    /// that epoch (an owner's own bookkeeping after a pause must not undo the new owner's room).
    pub async fn put_room_doc(
        &self,
        room: &str,
        expected: Option<u64>,
        doc: &str,
        as_owner: Option<&Ownership>,
    ) -> Result<Put, ClusterError> {
        let v: i64 = Script::new(PUT_ROOM)
            .key(self.keys.room(room))
            .key(self.keys.rooms())
            .key(self.keys.room_owner(room))
            .arg(expected.map(|v| v.to_string()).unwrap_or_default())
            .arg(doc)
            .arg(room)
            .arg(as_owner.map(|o| o.node.as_str()).unwrap_or_default())
            .arg(as_owner.map(|o| o.epoch.to_string()).unwrap_or_default())
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(match v {
            -2 => Put::Fenced,
            v => u64::try_from(v).map_or(Put::Stale, Put::Written),
        })
    }

    /// Deletes room `room` for node `node` unless another live node owns it (then that node's id
    /// comes back, to ask it). The owner entry goes too; its epoch is remembered.
    pub async fn delete_room_doc(&self, room: &str, node: &str) -> Result<Deleted, ClusterError> {
        let (code, owner): (u8, String) = Script::new(DELETE_ROOM)
            .key(self.keys.room(room))
            .key(self.keys.rooms())
            .key(self.keys.room_owner(room))
            .key(self.keys.placed())
            .arg(node)
            .arg(self.keys.node_prefix())
            .arg(u64::try_from(EPOCH_MEMORY.as_millis()).unwrap_or(u64::MAX))
            .arg(room)
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(match code {
            1 => Deleted::Deleted,
            2 => Deleted::OwnedBy(owner),
            _ => Deleted::NotFound,
        })
    }

    /// Every room's document with its live summary, if fresh (in no particular order).
    pub async fn room_docs(&self) -> Result<Vec<(String, Option<String>)>, ClusterError> {
        let flat: Vec<String> = Script::new(LIST_ROOMS)
            .key(self.keys.rooms())
            .arg(self.keys.room(""))
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(flat
            .chunks(2)
            .map(|pair| {
                let live = pair.get(1).filter(|l| !l.is_empty()).cloned();
                (pair[0].clone(), live)
            })
            .collect())
    }

    /// Writes the live summaries (`(room, json)`) of the rooms this node serves, each alive for
    /// `ttl` unless written again (one round trip).
    pub async fn put_live(
        &self,
        rooms: &[(String, String)],
        ttl: std::time::Duration,
    ) -> Result<(), ClusterError> {
        if rooms.is_empty() {
            return Ok(());
        }
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = redis::pipe();
        for (room, json) in rooms {
            pipe.cmd("SET")
                .arg(self.keys.room_live(room))
                .arg(json)
                .arg("PX")
                .arg(ms)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.con.clone()).await?;
        Ok(())
    }
}

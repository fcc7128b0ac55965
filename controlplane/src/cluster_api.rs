//! The cluster's REST surface (admin): `GET /v1/nodes`, the live nodes and their load (a single node
//! lists itself; in a cluster the list comes from Redis), and `POST`/`DELETE /v1/nodes/{id}/drain`,
//! which make a node take no new rooms (or take them again): this node directly, another through
//! its control channel, answered once the node's record shows it. A Redis that does not answer is
//! 503 `cluster_unavailable`.

use std::sync::Arc;
use std::time::Instant;

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use sluice_cluster::{ClusterError, ControlMsg, NodeInfo, NodeState};
use utoipa::ToSchema;

use crate::cluster_link::publish_record;
use crate::error::{ApiError, ErrorBody};
use crate::guard::Admin;
use crate::state::AppState;

/// The nodes of the cluster.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeList {
    /// Every live node, by id.
    pub nodes: Vec<NodeInfo>,
}

/// Lists the live nodes with their region, URL, state and load.
#[utoipa::path(get, path = "/v1/nodes", responses((status = 200, body = NodeList), (status = 401, body = ErrorBody),
    (status = 503, body = ErrorBody, description = "`cluster_unavailable`: the cluster store (Redis) does not answer")),
    security(("api_key" = [])))]
pub async fn list_nodes(
    State(s): State<Arc<AppState>>,
    _admin: Admin,
) -> Result<Json<NodeList>, ApiError> {
    let Some(store) = &s.cluster else {
        return Ok(Json(NodeList {
            nodes: vec![s.node_record(Instant::now())],
        }));
    };
    let nodes = store.nodes().await.map_err(unavailable)?;
    Ok(Json(NodeList { nodes }))
}

/// How long a drain asked of another node may take to show in its record.
const DRAIN_WAIT: Duration = Duration::from_secs(3);

fn unavailable(e: ClusterError) -> ApiError {
    ApiError::from(e)
}

fn unknown_node(id: &str) -> ApiError {
    ApiError::not_found("unknown_node", format!("no live node {id:?}"))
}

/// Drains a node: it takes no new rooms and moves the rooms it serves, one by one, to other nodes
/// (members get `redirect`); it answers once the node's record says `draining`.
#[utoipa::path(post, path = "/v1/nodes/{id}/drain", params(("id" = String, Path, description = "Node id")),
    responses((status = 200, body = NodeInfo, description = "the node's record, now `draining`"), (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "`unknown_node`"), (status = 503, body = ErrorBody),
    (status = 504, body = ErrorBody, description = "`node_timeout`: the node did not show the change within 3 s")),
    security(("api_key" = [])))]
pub async fn drain_node(
    State(s): State<Arc<AppState>>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<NodeInfo>, ApiError> {
    set_draining(&s, &id, true).await.map(Json)
}

/// Ends a node's drain: it takes new rooms again.
#[utoipa::path(delete, path = "/v1/nodes/{id}/drain", params(("id" = String, Path, description = "Node id")),
    responses((status = 200, body = NodeInfo, description = "the node's record, now `serving`"), (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn undrain_node(
    State(s): State<Arc<AppState>>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<NodeInfo>, ApiError> {
    set_draining(&s, &id, false).await.map(Json)
}

async fn set_draining(s: &Arc<AppState>, id: &str, draining: bool) -> Result<NodeInfo, ApiError> {
    if id == s.node.identity().id {
        s.node.set_draining(draining);
        publish_record(s).await;
        if draining {
            s.start_drain();
        }
        return Ok(s.node_record(Instant::now()));
    }
    let Some(store) = &s.cluster else {
        return Err(unknown_node(id));
    };
    if !store
        .nodes()
        .await
        .map_err(unavailable)?
        .iter()
        .any(|n| n.id == id)
    {
        return Err(unknown_node(id));
    }
    let msg = ControlMsg::Drain { draining };
    let want = if draining {
        NodeState::Draining
    } else {
        NodeState::Serving
    };
    let deadline = Instant::now() + DRAIN_WAIT;
    let mut sent: Option<Instant> = None;
    loop {
        // The message is idempotent: sent again every 500 ms in case the node was (re)subscribing.
        if sent.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
            store.send_control(id, &msg).await.map_err(unavailable)?;
            sent = Some(Instant::now());
        }
        let nodes = store.nodes().await.map_err(unavailable)?;
        match nodes.into_iter().find(|n| n.id == id) {
            Some(n) if n.state == want => return Ok(n),
            Some(_) => {}
            None => return Err(unknown_node(id)),
        }
        if Instant::now() >= deadline {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "node_timeout",
                format!(
                    "node {id:?} did not show the change within {} s",
                    DRAIN_WAIT.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

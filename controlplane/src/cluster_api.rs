//! The cluster's REST surface: `GET /v1/nodes` (admin), the live nodes and their load. A single
//! node lists itself; in a cluster the list comes from Redis, and a Redis that does not answer is
//! 503 `cluster_unavailable`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use sluice_cluster::NodeInfo;
use utoipa::ToSchema;

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
    match store.nodes().await {
        Ok(nodes) => Ok(Json(NodeList { nodes })),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_unavailable",
            format!("the cluster store does not answer: {e}"),
        )),
    }
}

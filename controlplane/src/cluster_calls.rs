//! Control actions on a room another node serves (kick, mute, delete), asked over Redis pub/sub
//! and answered by that node once it has done them (docs/cluster.md, "Control actions"). Media and
//! signaling never cross Redis: only these small requests do. The asking side keeps the requests
//! waiting for their `done`; one without an answer within [`ASK_TIMEOUT`] is 504 `node_timeout`
//! (whether it happened then is for the caller to read from the room).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::StatusCode;
use sluice_cluster::{ClusterStore, ControlMsg, ReplyTo, RoomAction};
use tokio::sync::oneshot;

use crate::error::ApiError;

/// How long a node waits for another to answer a control action.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// The answer to a control action: the status it ended with, and the error if it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status (2xx: done).
    pub status: u16,
    /// The error's code.
    pub code: Option<String>,
    /// The error's message.
    pub message: Option<String>,
}

impl Answer {
    /// The answer for what the action returned.
    pub fn of(result: &Result<(), ApiError>) -> Self {
        match result {
            Ok(()) => Self {
                status: 204,
                code: None,
                message: None,
            },
            Err(e) => Self {
                status: e.status.as_u16(),
                code: Some(e.code.to_string()),
                message: Some(e.message.clone()),
            },
        }
    }

    /// Back to what the action returned on the node that did it.
    fn into_result(self) -> Result<(), ApiError> {
        if (200..300).contains(&self.status) {
            return Ok(());
        }
        // Only an error status passes through; anything else an owner sent is a bad gateway.
        let status = match StatusCode::from_u16(self.status) {
            Ok(s) if s.is_client_error() || s.is_server_error() => s,
            _ => StatusCode::BAD_GATEWAY,
        };
        // Codes are `&'static`: the ones a room action can end with, else a generic one.
        let code = match self.code.as_deref() {
            Some("unknown_room") => "unknown_room",
            Some("unknown_participant") => "unknown_participant",
            Some("cluster_unavailable") => "cluster_unavailable",
            Some("busy_room") => "busy_room",
            _ => "node_error",
        };
        Err(ApiError::new(
            status,
            code,
            self.message.unwrap_or_default(),
        ))
    }
}

fn node_timeout(node: &str) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "node_timeout",
        format!(
            "node {node:?}, which serves the room, did not answer within {} s",
            ASK_TIMEOUT.as_secs()
        ),
    )
}

/// The requests this node sent and waits on.
#[derive(Debug, Default)]
pub struct Calls {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
}

impl Calls {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Answer>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks node `node` (through `store`) to do `action`, as node `me`; returns once it answered.
    pub async fn ask(
        &self,
        store: &ClusterStore,
        me: &str,
        node: &str,
        action: RoomAction,
    ) -> Result<(), ApiError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(id, tx);
        let msg = ControlMsg::Room {
            action,
            reply: ReplyTo {
                node: me.to_string(),
                id,
            },
        };
        let sent = store.send_control(node, &msg).await;
        let answer = match sent {
            Ok(0) => None,
            Ok(_) => tokio::time::timeout(ASK_TIMEOUT, rx)
                .await
                .ok()
                .and_then(Result::ok),
            Err(e) => {
                self.waiting().remove(&id);
                return Err(e.into());
            }
        };
        self.waiting().remove(&id);
        answer.ok_or_else(|| node_timeout(node))?.into_result()
    }

    /// An answer arrived for request `id` (unknown ids, late answers, are dropped).
    pub fn answered(&self, id: u64, answer: Answer) {
        if let Some(tx) = self.waiting().remove(&id) {
            let _ = tx.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_carry_the_owners_result_back() {
        assert!(Answer::of(&Ok(())).into_result().is_ok());
        let e = ApiError::not_found("unknown_participant", "no such participant");
        let back = Answer::of(&Err(e)).into_result().unwrap_err();
        assert_eq!(
            (back.status, back.code, back.message.as_str()),
            (
                StatusCode::NOT_FOUND,
                "unknown_participant",
                "no such participant"
            )
        );
        let odd = Answer {
            status: 999,
            code: Some("made_up".into()),
            message: None,
        };
        let back = odd.into_result().unwrap_err();
        assert_eq!(
            (back.status, back.code),
            (StatusCode::BAD_GATEWAY, "node_error")
        );
    }

    #[test]
    fn an_answer_reaches_its_request_and_strays_are_dropped() {
        let calls = Calls::default();
        let (tx, mut rx) = oneshot::channel();
        calls.waiting().insert(3, tx);
        calls.answered(9, Answer::of(&Ok(())));
        assert!(rx.try_recv().is_err(), "not for request 3");
        calls.answered(3, Answer::of(&Ok(())));
        assert_eq!(rx.try_recv().unwrap().status, 204);
        assert!(calls.waiting().is_empty());
    }
}

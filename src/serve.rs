//! `sluice serve`: both planes in one process. Configuration comes from flags, then environment
//! variables, then a TOML file, then embedded defaults (HTTP on 127.0.0.1:7880, UDP from 7882, one
//! worker per core). Without a configured API key, one is generated on first start, stored in the
//! state directory (mode 0600) and printed once; a configured one (`--api-key`, better
//! `--api-key-file`) shorter than 32 characters is refused. Guests may join without the key only
//! where `--guest-join` allows it (by default: only on a loopback HTTP listener). SIGTERM or SIGINT
//! shuts down gracefully and exits 0; in a cluster it drains first (its rooms move to other nodes,
//! [`sluice_controlplane::room_moves`]).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use sluice_cluster::keys::Keys;
use sluice_cluster::ClusterStore;
use sluice_controlplane::access::Access;
use sluice_controlplane::auth::{random_secret, validate_api_key, Auth, DEFAULT_TOKEN_TTL};
use sluice_controlplane::clock::Now;
use sluice_controlplane::event_log::EventLog;
use sluice_controlplane::hub::Hub;
use sluice_controlplane::media::Media;
use sluice_controlplane::node::{NodeIdentity, NodeSelf};
use sluice_controlplane::rooms::Rooms;
use sluice_controlplane::router::{router, with_limits};
use sluice_controlplane::state::AppState;
use sluice_controlplane::webhooks::{WebhookConfig, Webhooks};
use sluice_dataplane::{Dataplane, DataplaneConfig};

use crate::config::{redacted, resolve, ServeArgs};

/// Reads a secret from `dir/name`, or creates it (0600). Returns (secret, created).
fn load_or_create_secret(dir: &Path, name: &str) -> anyhow::Result<(String, bool)> {
    load_or_create(dir, name, random_secret)
}

/// Reads a value from `dir/name`, or creates it with `make` (0600). Returns (value, created).
fn load_or_create(
    dir: &Path,
    name: &str,
    make: impl FnOnce() -> String,
) -> anyhow::Result<(String, bool)> {
    let path = dir.join(name);
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok((s, false));
        }
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating state directory {}", dir.display()))?;
    let secret = make();
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{secret}")?;
    Ok((secret, true))
}

/// Runs the server until SIGTERM/SIGINT.
/// malloc arenas the server keeps, unless `MALLOC_ARENA_MAX` says otherwise: members are set up on
/// whichever runtime thread takes their socket, and each arena keeps its own partly used pages, so
/// fewer arenas hold fewer of them (memory per member, README; no arena is used per packet).
const MALLOC_ARENAS: i32 = 2;

/// Caps the malloc arenas at [`MALLOC_ARENAS`], before any thread starts; `None` where the
/// operator set `MALLOC_ARENA_MAX` (glibc took that) or the allocator is not glibc's.
fn cap_malloc_arenas() -> Option<i32> {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return None;
    }
    sluice_dataplane::io::heap::limit_arenas(MALLOC_ARENAS).then_some(MALLOC_ARENAS)
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let malloc_arenas = cap_malloc_arenas();
    let settings = resolve(args)?;
    let (api_key, generated) = match &settings.api_key {
        Some(k) => (k.clone(), false),
        None => load_or_create_secret(&settings.state_dir, "admin.key")?,
    };
    validate_api_key(&api_key).with_context(|| {
        format!(
            "refusing the API key in {} (delete it to have a new one generated)",
            settings.state_dir.join("admin.key").display()
        )
    })?;
    let token_secret = match &settings.cluster.token_secret {
        Some(t) => t.clone(),
        None => load_or_create_secret(&settings.state_dir, "token.secret")?.0,
    };
    let node_id = match &settings.cluster.node_id {
        Some(id) => id.clone(),
        None => {
            load_or_create(&settings.state_dir, "node.id", || {
                format!("node-{:08x}", rand::random::<u32>())
            })?
            .0
        }
    };

    let dataplane = Arc::new(
        Dataplane::start(DataplaneConfig {
            workers: settings.workers,
            bind_ip: settings.udp_bind,
            base_port: settings.udp_port,
            backend: settings.backend,
            ..DataplaneConfig::default()
        })
        .context("starting the dataplane")?,
    );

    let hub = Arc::new(Hub::new(settings.signal_limits));
    let media = Media::new(dataplane.clone(), settings.public_ip, hub.clone())
        .context("creating the DTLS certificate")?;
    let pump = Arc::new(media.start_pump().context("starting the media thread")?);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-control")
        .enable_all()
        .build()
        .context("starting the control-plane runtime")?;
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(settings.http)
            .await
            .with_context(|| format!("binding HTTP to {}", settings.http))?;
        let http = listener.local_addr()?;
        let webhooks = if settings.webhooks.is_empty() {
            None
        } else {
            let secret = match &settings.webhook_secret {
                Some(k) => k.clone(),
                None => load_or_create_secret(&settings.state_dir, "webhook.secret")?.0,
            };
            let hooks = Webhooks::start(
                WebhookConfig::new(settings.webhooks.clone(), secret),
                &tokio::runtime::Handle::current(),
            )
            .context("webhooks")?;
            tracing::info!(
                urls = settings.webhooks.len(),
                secret = if settings.webhook_secret.is_some() { "configured".to_string() } else { settings.state_dir.join("webhook.secret").display().to_string() },
                "webhooks on: bodies signed with HMAC-SHA256 (x-sluice-signature)"
            );
            Some(hooks)
        };
        let cluster = match &settings.cluster.redis {
            Some(url) => Some(
                ClusterStore::open(url, Keys::default(), Duration::from_millis(500))
                    .with_context(|| format!("--redis {}", redacted(url)))?,
            ),
            None => None,
        };
        let state = Arc::new(AppState {
            rooms: Mutex::new(Rooms::with_defaults(settings.rooms)),
            auth: Auth::new(&api_key, token_secret.as_bytes(), DEFAULT_TOKEN_TTL),
            public_ws_base: settings
                .public_ws_base
                .clone()
                .unwrap_or_else(|| format!("ws://{http}")),
            public_url: settings.public_ws_base.is_some(),
            metrics_auth: settings.metrics_auth,
            access: Mutex::new(Access::new(settings.access, std::time::Instant::now())),
            dataplane: Some(dataplane.clone()),
            hub,
            media: Some(media.clone()),
            webhooks,
            node: Arc::new(NodeSelf::new(NodeIdentity {
                id: node_id.clone(),
                region: settings.cluster.region.clone(),
                url: settings.cluster.node_url.clone().unwrap_or_else(|| {
                    settings.public_ws_base.as_deref().map_or_else(
                        || format!("http://{http}"),
                        |ws| ws.replacen("ws", "http", 1),
                    )
                }),
                max_members: settings.cluster.max_members,
            })),
            cluster_rooms: cluster.clone().map(|store| {
                Arc::new(sluice_controlplane::cluster_rooms::ClusterRooms::new(
                    store,
                    settings.cluster.regions.clone(),
                ))
            }),
            region_header: settings.cluster.region_header.clone(),
            calls: Default::default(),
            events: cluster
                .clone()
                .map(|store| EventLog::start(store, node_id.clone())),
            cluster,
            http: Arc::default(),
            media_pump: Some(pump),
        });
        let on_shutdown = state.clone();
        let leaving = state.clone();
        let _registration = sluice_controlplane::cluster_link::spawn(state.clone());
        let _control = sluice_controlplane::cluster_link::spawn_control(state.clone());
        let _roster = sluice_controlplane::roster_link::spawn(state.clone());
        let on_shutdown_hooks = state.webhooks.clone();
        // Room housekeeping: cooldowns back to P2P, empty rooms closing themselves.
        let keeper = state.clone();
        tokio::spawn(async move {
            let mut empty_since = std::collections::HashMap::new();
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
            loop {
                tick.tick().await;
                keeper.housekeeping(Now::read(), &mut empty_since);
            }
        });
        let udp: Vec<String> = (0..dataplane.workers())
            .filter_map(|i| dataplane.worker_addr(i))
            .map(|a| a.to_string())
            .collect();
        println!("sluice listening on http://{http} (UDP {}, backend {})", udp.join(" "), dataplane.backend());
        if generated {
            println!(
                "admin API key (generated, stored in {}): {api_key}",
                settings.state_dir.join("admin.key").display()
            );
        }
        tracing::info!(
            guest_join = settings.access.guest_join,
            join_grace_s = settings.access.join_grace.as_secs(),
            ban_s = settings.access.ban.as_secs(),
            guest_joins = %format!("{} then {}/min per IP", settings.access.guest_joins.burst, settings.access.guest_joins.per_min),
            admin_failures = %format!("{} then {}/min per IP", settings.access.admin_failures.burst, settings.access.admin_failures.per_min),
            metrics_auth = settings.metrics_auth,
            "access: guests {}",
            if settings.access.guest_join { "may join rooms that allow them" } else { "off (participants need tokens from the API)" }
        );
        if let Some(ip) = settings.public_ip {
            tracing::info!(%ip, "public IP for ICE candidates");
        }
        tracing::info!(%http, workers = dataplane.workers(), backend = %dataplane.backend(), malloc_arenas = ?malloc_arenas, "sluice started");
        let hub = state.hub.clone();
        let http_counters = state.http.clone();
        let app = with_limits(router(state), settings.http_limits);
        crate::http::serve(
            listener,
            app,
            settings.http_limits,
            http_counters,
            async move {
                shutdown_signal().await;
                // In a cluster the rooms move to other nodes first (members are redirected).
                on_shutdown.drain_for_exit().await;
                // Every member left gets `bye` and is reported as gone; every room as finished.
                on_shutdown.shutdown();
            },
            Duration::from_secs(2),
        )
        .await;
        // Upgraded sockets are not the HTTP server's to wait for: give their tasks a moment to
        // write the `bye` queued above before the runtime stops (and drops them).
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while hub.open_sockets() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sluice_controlplane::cluster_link::leave(&leaving).await;
        // The last webhooks (participant_left, room_finished) go out before the exit, bounded.
        if let Some(w) = &on_shutdown_hooks {
            if !w.flush(settings.shutdown_wait).await {
                tracing::warn!(pending = w.pending(), wait_s = settings.shutdown_wait.as_secs(), "stopping with webhooks undelivered");
            }
        }
        anyhow::Ok(())
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    drop(media);
    match Arc::try_unwrap(dataplane) {
        Ok(dp) => dp.shutdown(),
        Err(dp) => drop(dp),
    }
    tracing::info!("sluice stopped");
    result
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
}

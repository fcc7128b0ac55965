//! `sluice serve`: both planes in one process. Configuration comes from flags, then environment
//! variables, then a TOML file, then embedded defaults (HTTP on 127.0.0.1:7880, UDP from 7882, one
//! worker per core). Without a configured API key, one is generated on first start, stored in the
//! state directory (mode 0600) and printed once; a configured one (`--api-key`, better
//! `--api-key-file`) shorter than 32 characters is refused. Guests may join without the key only
//! where `--guest-join` allows it (by default: only on a loopback HTTP listener). SIGTERM or SIGINT
//! shuts down gracefully and exits 0.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use sluice_cluster::keys::Keys;
use sluice_cluster::ClusterStore;
use sluice_controlplane::access::{
    Access, AccessConfig, Rate, ADMIN_FAIL_RATE, DEFAULT_BAN_S, DEFAULT_JOIN_GRACE_S,
    GUEST_JOIN_RATE,
};
use sluice_controlplane::auth::{random_secret, validate_api_key, Auth, DEFAULT_TOKEN_TTL};
use sluice_controlplane::clock::Now;
use sluice_controlplane::event_log::EventLog;
use sluice_controlplane::hub::Hub;
use sluice_controlplane::limits::{HttpLimits, SignalLimits};
use sluice_controlplane::media::Media;
use sluice_controlplane::node::{NodeIdentity, NodeSelf};
use sluice_controlplane::rooms::{RoomDefaults, Rooms, LIMIT_SECONDS};
use sluice_controlplane::router::{router, with_limits};
use sluice_controlplane::state::AppState;
use sluice_controlplane::webhooks::{WebhookConfig, Webhooks};
use sluice_dataplane::io::BackendChoice;
use sluice_dataplane::{Dataplane, DataplaneConfig};

/// Options of `sluice serve` (each also settable by environment variable or config file).
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// TOML configuration file (keys as the long flags, with `_` for `-`).
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP listen address (REST, signaling, web page).
    #[arg(long, env = "SLUICE_HTTP")]
    pub http: Option<SocketAddr>,
    /// Address the UDP workers bind to.
    #[arg(long, env = "SLUICE_UDP_BIND")]
    pub udp_bind: Option<IpAddr>,
    /// First UDP port; worker i listens on udp_port + i (0: ephemeral ports).
    #[arg(long, env = "SLUICE_UDP_PORT")]
    pub udp_port: Option<u16>,
    /// Dataplane workers (default: one per core).
    #[arg(long, env = "SLUICE_WORKERS")]
    pub workers: Option<usize>,
    /// I/O backend: auto, uring or mmsg.
    #[arg(long, env = "SLUICE_BACKEND")]
    pub backend: Option<BackendChoice>,
    /// Admin API key, at least 32 characters (default: generated on first start and kept in the
    /// state directory). Prefer --api-key-file: a command line is visible to every local user.
    #[arg(long, env = "SLUICE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// File holding the admin API key (its first line; surrounding whitespace ignored).
    #[arg(long, env = "SLUICE_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Public base URL of this server behind a TLS proxy, e.g. https://voice.example.com:
    /// `signal_url` and the web page then use wss:// on that host.
    #[arg(long, env = "SLUICE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Require the API key on GET /metrics.
    #[arg(long, env = "SLUICE_METRICS_AUTH", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub metrics_auth: Option<bool>,
    /// Seconds a participant has to connect to signaling before it is removed (its name freed,
    /// its token refused).
    #[arg(long, env = "SLUICE_JOIN_GRACE_S")]
    pub join_grace_s: Option<u32>,
    /// Seconds a kicked participant cannot guest-join the same room again (0: no ban).
    #[arg(long, env = "SLUICE_BAN_S")]
    pub ban_s: Option<u32>,
    /// Address given to clients in ICE candidates (default: the UDP bind address).
    #[arg(long, env = "SLUICE_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,
    /// Directory for the generated API key and token secret.
    #[arg(long, env = "SLUICE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Let anyone who can reach the HTTP address join an existing room that allows guests, from
    /// the web page (`POST /v1/rooms/{room}/join`, no API key). Default: true only when the HTTP
    /// listener is on a loopback address; false when an application hands out participant tokens.
    #[arg(long, env = "SLUICE_GUEST_JOIN", value_name = "BOOL")]
    pub guest_join: Option<bool>,
    /// Default largest P2P mesh of an `auto` room (2..=16; rooms may set their own).
    #[arg(long, env = "SLUICE_P2P_MAX")]
    pub p2p_max: Option<u32>,
    /// Default seconds an `auto` room on the SFU must stay small before it returns to P2P.
    #[arg(long, env = "SLUICE_COOLDOWN_S")]
    pub cooldown_s: Option<u32>,
    /// Default seconds a room may stay without a connected member before it closes (0: never).
    #[arg(long, env = "SLUICE_EMPTY_TIMEOUT_S")]
    pub empty_timeout_s: Option<u32>,
    /// Webhook URL for room events (repeat for several; env: comma-separated).
    #[arg(long = "webhook", env = "SLUICE_WEBHOOKS", value_delimiter = ',')]
    pub webhooks: Vec<String>,
    /// Secret the webhook bodies are signed with (HMAC-SHA256; default: generated on first start and
    /// kept in the state directory).
    #[arg(long, env = "SLUICE_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Most HTTP connections open at once, signaling sockets included (default 4096).
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds a client has to send a request's headers before its connection is closed (default 10).
    #[arg(long, env = "SLUICE_HEADER_TIMEOUT_S")]
    pub header_timeout_s: Option<u32>,
    /// Seconds a request may take before it is answered 408 (default 30).
    #[arg(long, env = "SLUICE_REQUEST_TIMEOUT_S")]
    pub request_timeout_s: Option<u32>,
    /// Seconds between the server's pings on a signaling socket (default 15).
    #[arg(long, env = "SLUICE_WS_PING_S")]
    pub ws_ping_s: Option<u32>,
    /// Seconds of silence (no message, no pong) after which a signaling socket is closed (default 45).
    #[arg(long, env = "SLUICE_WS_IDLE_S")]
    pub ws_idle_s: Option<u32>,
    /// Seconds a stop waits for the last webhooks (`participant_left`, `room_finished`; default 5).
    #[arg(long, env = "SLUICE_SHUTDOWN_WAIT_S")]
    pub shutdown_wait_s: Option<u32>,
    /// Guest joins a client IP may make at once, refused ones included (default 20).
    #[arg(long, env = "SLUICE_GUEST_JOIN_BURST")]
    pub guest_join_burst: Option<u32>,
    /// Guest joins a client IP may make per minute after its burst (default 60).
    #[arg(long, env = "SLUICE_GUEST_JOIN_PER_MIN")]
    pub guest_join_per_min: Option<u32>,
    /// Failed admin authentications a client IP may make at once before it gets 429 (default 10).
    #[arg(long, env = "SLUICE_ADMIN_FAIL_BURST")]
    pub admin_fail_burst: Option<u32>,
    /// Failed admin authentications a client IP may make per minute after its burst (default 10).
    #[arg(long, env = "SLUICE_ADMIN_FAIL_PER_MIN")]
    pub admin_fail_per_min: Option<u32>,
    /// KiB of relayed signaling (peer SDP, ICE candidates) one member may receive per second, all
    /// senders together (default 128).
    #[arg(long, env = "SLUICE_RELAY_KIB_PER_S")]
    pub relay_kib_per_s: Option<u32>,
    /// KiB of relayed signaling one member may receive in a burst (default 512).
    #[arg(long, env = "SLUICE_RELAY_BURST_KIB")]
    pub relay_burst_kib: Option<u32>,
    /// Join a cluster coordinated through this Redis (`redis://host:port[/db]`); without it sluice
    /// is a single node with everything in memory.
    #[arg(long, env = "SLUICE_REDIS")]
    pub redis: Option<String>,
    /// This node's id in the cluster (default: generated on first start and kept in the state
    /// directory, so it stays the same across restarts).
    #[arg(long, env = "SLUICE_NODE_ID")]
    pub node_id: Option<String>,
    /// This node's region (default `default`).
    #[arg(long, env = "SLUICE_REGION")]
    pub region: Option<String>,
    /// Base URL clients reach this node at (default: --public-url, else http://<--http>).
    #[arg(long, env = "SLUICE_NODE_URL")]
    pub node_url: Option<String>,
    /// Most members this node takes before placement passes it over (0: no limit; default 0).
    #[arg(long, env = "SLUICE_MAX_MEMBERS")]
    pub max_members: Option<u32>,
    /// Secret participant tokens are signed with; every node of a cluster needs the same one
    /// (default: generated on first start and kept in the state directory).
    #[arg(long, env = "SLUICE_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    http: Option<SocketAddr>,
    udp_bind: Option<IpAddr>,
    udp_port: Option<u16>,
    workers: Option<usize>,
    backend: Option<String>,
    api_key: Option<String>,
    api_key_file: Option<PathBuf>,
    public_url: Option<String>,
    metrics_auth: Option<bool>,
    join_grace_s: Option<u32>,
    ban_s: Option<u32>,
    public_ip: Option<IpAddr>,
    state_dir: Option<PathBuf>,
    guest_join: Option<bool>,
    p2p_max: Option<u32>,
    cooldown_s: Option<u32>,
    empty_timeout_s: Option<u32>,
    webhooks: Option<Vec<String>>,
    webhook_secret: Option<String>,
    max_connections: Option<usize>,
    header_timeout_s: Option<u32>,
    request_timeout_s: Option<u32>,
    ws_ping_s: Option<u32>,
    ws_idle_s: Option<u32>,
    shutdown_wait_s: Option<u32>,
    guest_join_burst: Option<u32>,
    guest_join_per_min: Option<u32>,
    admin_fail_burst: Option<u32>,
    admin_fail_per_min: Option<u32>,
    relay_kib_per_s: Option<u32>,
    relay_burst_kib: Option<u32>,
    redis: Option<String>,
    node_id: Option<String>,
    region: Option<String>,
    node_url: Option<String>,
    max_members: Option<u32>,
    token_secret: Option<String>,
}

/// The resolved configuration.
#[derive(Debug)]
struct Settings {
    http: SocketAddr,
    udp_bind: IpAddr,
    udp_port: u16,
    workers: usize,
    backend: BackendChoice,
    api_key: Option<String>,
    public_ip: Option<IpAddr>,
    state_dir: PathBuf,
    /// `wss://host[:port][/path]` from `--public-url`.
    public_ws_base: Option<String>,
    metrics_auth: bool,
    access: AccessConfig,
    rooms: RoomDefaults,
    webhooks: Vec<String>,
    webhook_secret: Option<String>,
    http_limits: HttpLimits,
    signal_limits: SignalLimits,
    shutdown_wait: Duration,
    cluster: ClusterSettings,
}

/// The cluster settings (`redis: None`: a single node).
#[derive(Debug)]
struct ClusterSettings {
    redis: Option<String>,
    node_id: Option<String>,
    region: String,
    node_url: Option<String>,
    max_members: u32,
    token_secret: Option<String>,
}

fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("sluice");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/state/sluice"),
        None => PathBuf::from(".sluice"),
    }
}

fn resolve(args: ServeArgs) -> anyhow::Result<Settings> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let backend = match (args.backend, file.backend) {
        (Some(b), _) => b,
        (None, Some(b)) => b
            .parse()
            .map_err(|e| anyhow::anyhow!("config backend: {e}"))?,
        (None, None) => BackendChoice::Auto,
    };
    let cores = core_affinity::get_core_ids().map_or(1, |c| c.len()).max(1);
    let workers = args.workers.or(file.workers).unwrap_or(cores);
    if workers == 0 || workers > 64 {
        bail!("workers must be 1..=64, got {workers}");
    }
    let http = args
        .http
        .or(file.http)
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7880)));
    // Guests by default only where nobody but this machine can reach the server (the demo).
    let guest_join = args
        .guest_join
        .or(file.guest_join)
        .unwrap_or(http.ip().is_loopback());
    let api_key = match (
        args.api_key.or(file.api_key).filter(|k| !k.is_empty()),
        args.api_key_file.or(file.api_key_file),
    ) {
        (Some(_), Some(_)) => bail!(
            "give the API key either inline (--api-key) or as a file (--api-key-file), not both"
        ),
        (Some(k), None) => Some(k),
        (None, Some(path)) => Some(read_key_file(&path)?),
        (None, None) => None,
    };
    if let Some(k) = &api_key {
        validate_api_key(k).context("refusing the configured API key")?;
    }
    let public_ws_base = args
        .public_url
        .or(file.public_url)
        .map(|u| ws_base_of(&u))
        .transpose()?;
    let join_grace_s = args
        .join_grace_s
        .or(file.join_grace_s)
        .unwrap_or(DEFAULT_JOIN_GRACE_S);
    let ban_s = args.ban_s.or(file.ban_s).unwrap_or(DEFAULT_BAN_S);
    if !(1..=LIMIT_SECONDS).contains(&join_grace_s) || ban_s > LIMIT_SECONDS {
        bail!("join_grace_s must be 1..={LIMIT_SECONDS} and ban_s at most {LIMIT_SECONDS}");
    }
    let d = RoomDefaults::default();
    let rooms = RoomDefaults {
        guest_join,
        p2p_max: args.p2p_max.or(file.p2p_max).unwrap_or(d.p2p_max),
        cooldown_s: args.cooldown_s.or(file.cooldown_s).unwrap_or(d.cooldown_s),
        empty_timeout_s: args
            .empty_timeout_s
            .or(file.empty_timeout_s)
            .unwrap_or(d.empty_timeout_s),
    };
    if !(2..=16).contains(&rooms.p2p_max) {
        bail!("p2p_max must be 2..=16, got {}", rooms.p2p_max);
    }
    if rooms.cooldown_s > LIMIT_SECONDS || rooms.empty_timeout_s > LIMIT_SECONDS {
        bail!("cooldown_s and empty_timeout_s must be at most {LIMIT_SECONDS} (a day)");
    }
    let secs =
        |flag: Option<u32>, file: Option<u32>, default: Duration, name: &str| match flag.or(file) {
            Some(0) => bail!("{name} must be at least 1 second"),
            Some(n) if n > LIMIT_SECONDS => bail!("{name} must be at most {LIMIT_SECONDS}"),
            Some(n) => Ok(Duration::from_secs(n.into())),
            None => Ok(default),
        };
    // Counts of a throttle or budget: at least 1, at most a million.
    let count = |flag: Option<u32>, file: Option<u32>, default: u32, name: &str| match flag.or(file)
    {
        Some(n) if !(1..=1_000_000).contains(&n) => bail!("{name} must be 1..=1000000, got {n}"),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    let guest_joins = Rate {
        burst: count(
            args.guest_join_burst,
            file.guest_join_burst,
            GUEST_JOIN_RATE.burst,
            "guest_join_burst",
        )?,
        per_min: count(
            args.guest_join_per_min,
            file.guest_join_per_min,
            GUEST_JOIN_RATE.per_min,
            "guest_join_per_min",
        )?,
    };
    let admin_failures = Rate {
        burst: count(
            args.admin_fail_burst,
            file.admin_fail_burst,
            ADMIN_FAIL_RATE.burst,
            "admin_fail_burst",
        )?,
        per_min: count(
            args.admin_fail_per_min,
            file.admin_fail_per_min,
            ADMIN_FAIL_RATE.per_min,
            "admin_fail_per_min",
        )?,
    };
    let (hd, sd) = (HttpLimits::default(), SignalLimits::default());
    let http_limits = HttpLimits {
        header_read_timeout: secs(
            args.header_timeout_s,
            file.header_timeout_s,
            hd.header_read_timeout,
            "header_timeout_s",
        )?,
        request_timeout: secs(
            args.request_timeout_s,
            file.request_timeout_s,
            hd.request_timeout,
            "request_timeout_s",
        )?,
        max_connections: match args.max_connections.or(file.max_connections) {
            Some(0) => bail!("max_connections must be at least 1"),
            Some(n) => n,
            None => hd.max_connections,
        },
    };
    let signal_limits = SignalLimits {
        ping_interval: secs(
            args.ws_ping_s,
            file.ws_ping_s,
            sd.ping_interval,
            "ws_ping_s",
        )?,
        idle_timeout: secs(args.ws_idle_s, file.ws_idle_s, sd.idle_timeout, "ws_idle_s")?,
        relay_bytes_per_s: count(
            args.relay_kib_per_s,
            file.relay_kib_per_s,
            sd.relay_bytes_per_s / 1024,
            "relay_kib_per_s",
        )?
        .saturating_mul(1024),
        relay_burst_bytes: count(
            args.relay_burst_kib,
            file.relay_burst_kib,
            sd.relay_burst_bytes / 1024,
            "relay_burst_kib",
        )?
        .saturating_mul(1024),
    };
    let shutdown_wait = secs(
        args.shutdown_wait_s,
        file.shutdown_wait_s,
        Duration::from_secs(5),
        "shutdown_wait_s",
    )?;
    let name_ok = |v: &str| {
        !v.is_empty()
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    let cluster = ClusterSettings {
        redis: args.redis.or(file.redis).filter(|r| !r.is_empty()),
        node_id: args.node_id.or(file.node_id),
        region: args
            .region
            .or(file.region)
            .unwrap_or_else(|| "default".into()),
        node_url: args.node_url.or(file.node_url),
        max_members: args.max_members.or(file.max_members).unwrap_or(0),
        token_secret: args
            .token_secret
            .or(file.token_secret)
            .filter(|t| !t.is_empty()),
    };
    if let Some(id) = cluster.node_id.as_deref().filter(|id| !name_ok(id)) {
        bail!("node_id must be 1 to 64 of A-Z a-z 0-9 - _ . , got {id:?}");
    }
    if !name_ok(&cluster.region) {
        bail!(
            "region must be 1 to 64 of A-Z a-z 0-9 - _ . , got {:?}",
            cluster.region
        );
    }
    if let Some(u) = &cluster.node_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            bail!("node_url must be an http:// or https:// base URL, got {u:?}");
        }
    }
    if cluster.token_secret.as_ref().is_some_and(|t| t.len() < 32) {
        bail!("token_secret must be at least 32 characters");
    }
    Ok(Settings {
        cluster,
        http,
        http_limits,
        signal_limits,
        shutdown_wait,
        udp_bind: args
            .udp_bind
            .or(file.udp_bind)
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        udp_port: args.udp_port.or(file.udp_port).unwrap_or(7882),
        workers,
        backend,
        api_key,
        public_ip: args.public_ip.or(file.public_ip),
        state_dir: args
            .state_dir
            .or(file.state_dir)
            .unwrap_or_else(default_state_dir),
        public_ws_base,
        metrics_auth: args.metrics_auth.or(file.metrics_auth).unwrap_or(false),
        access: AccessConfig {
            guest_join,
            join_grace: Duration::from_secs(join_grace_s.into()),
            ban: Duration::from_secs(ban_s.into()),
            guest_joins,
            admin_failures,
        },
        rooms,
        webhooks: if args.webhooks.is_empty() {
            file.webhooks.unwrap_or_default()
        } else {
            args.webhooks
        },
        webhook_secret: args
            .webhook_secret
            .or(file.webhook_secret)
            .filter(|k| !k.is_empty()),
    })
}

/// The API key in `path`: its content, trimmed.
fn read_key_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the API key file {}", path.display()))?;
    let key = text.trim().to_string();
    if key.is_empty() {
        bail!("the API key file {} is empty", path.display());
    }
    Ok(key)
}

/// `wss://host[:port][/path]` (or `ws://` for an `http://` URL) from a `--public-url`.
fn ws_base_of(url: &str) -> anyhow::Result<String> {
    let url = url.trim();
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        ("wss", rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        ("ws", rest)
    } else {
        bail!("--public-url must start with https:// (or http://), got {url:?}");
    };
    let rest = rest.trim_end_matches('/');
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty()
        || rest.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '@' | '"' | '<' | '>')
        })
    {
        bail!("--public-url must be a plain URL such as https://voice.example.com, got {url:?}");
    }
    Ok(format!("{scheme}://{rest}"))
}

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
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
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
                    .with_context(|| format!("--redis {url}"))?,
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
        tracing::info!(%http, workers = dataplane.workers(), backend = %dataplane.backend(), "sluice started");
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
                // Every member gets `bye` and is reported as gone; every room as finished.
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

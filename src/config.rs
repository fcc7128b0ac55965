//! The configuration of `sluice serve`: flags, then environment variables, then a TOML file, then
//! embedded defaults, resolved and checked once into [`Settings`] (a bad value stops the start with
//! a message naming the setting).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use sluice_controlplane::access::{
    AccessConfig, Rate, ADMIN_FAIL_RATE, DEFAULT_BAN_S, DEFAULT_JOIN_GRACE_S, GUEST_JOIN_RATE,
};
use sluice_controlplane::auth::validate_api_key;
use sluice_controlplane::limits::{HttpLimits, SignalLimits};
use sluice_controlplane::rooms::{RoomDefaults, LIMIT_SECONDS};
use sluice_dataplane::io::BackendChoice;

/// Options of `sluice serve` (each also settable by environment variable or config file).
#[derive(clap::Args, Clone)]
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
    /// A request header a load balancer sets to the client's region (e.g. `x-client-region`);
    /// placement uses it when a join request names no `region`.
    #[arg(long, env = "SLUICE_REGION_HEADER")]
    pub region_header: Option<String>,
}

/// A distance between two regions in the TOML file (`[[region_distance]]`), in any unit as long
/// as all entries use the same one (e.g. measured round-trip ms).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionDistance {
    a: String,
    b: String,
    distance: f64,
}

/// No `Debug`: it may hold the API key and the secrets.
#[derive(Default, Deserialize)]
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
    region_header: Option<String>,
    /// `[regions.NAME] lat = …, lon = …`: where each region is.
    regions: Option<std::collections::HashMap<String, sluice_cluster::region::Coordinates>>,
    region_distance: Option<Vec<RegionDistance>>,
}

/// The resolved configuration.
/// No `Debug`: it holds the API key and the secrets.
pub(crate) struct Settings {
    pub(crate) http: SocketAddr,
    pub(crate) udp_bind: IpAddr,
    pub(crate) udp_port: u16,
    pub(crate) workers: usize,
    pub(crate) backend: BackendChoice,
    pub(crate) api_key: Option<String>,
    pub(crate) public_ip: Option<IpAddr>,
    pub(crate) state_dir: PathBuf,
    /// `wss://host[:port][/path]` from `--public-url`.
    pub(crate) public_ws_base: Option<String>,
    pub(crate) metrics_auth: bool,
    pub(crate) access: AccessConfig,
    pub(crate) rooms: RoomDefaults,
    pub(crate) webhooks: Vec<String>,
    pub(crate) webhook_secret: Option<String>,
    pub(crate) http_limits: HttpLimits,
    pub(crate) signal_limits: SignalLimits,
    pub(crate) shutdown_wait: Duration,
    pub(crate) cluster: ClusterSettings,
}

/// The cluster settings (`redis: None`: a single node).
/// No `Debug`: it holds the token secret.
pub(crate) struct ClusterSettings {
    pub(crate) redis: Option<String>,
    pub(crate) node_id: Option<String>,
    pub(crate) region: String,
    pub(crate) node_url: Option<String>,
    pub(crate) max_members: u32,
    pub(crate) token_secret: Option<String>,
    pub(crate) region_header: Option<axum::http::HeaderName>,
    pub(crate) regions: sluice_cluster::region::Regions,
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

pub(crate) fn resolve(args: ServeArgs) -> anyhow::Result<Settings> {
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
        region_header: args
            .region_header
            .or(file.region_header)
            .filter(|h| !h.is_empty())
            .map(|h| {
                axum::http::HeaderName::try_from(h.to_ascii_lowercase())
                    .map_err(|_| anyhow::anyhow!("region_header must be a header name, got {h:?}"))
            })
            .transpose()?,
        regions: sluice_cluster::region::Regions::new(
            file.regions.unwrap_or_default(),
            file.region_distance
                .unwrap_or_default()
                .into_iter()
                .map(|d| (d.a, d.b, d.distance)),
        ),
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

/// `url` with any password taken out (`redis://:secret@host` → `redis://:***@host`), for messages.
pub(crate) fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme + 3 => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_redacted_for_messages() {
        assert_eq!(
            redacted("redis://:s3cret@10.0.0.5:6379"),
            "redis://:***@10.0.0.5:6379"
        );
        assert_eq!(redacted("redis://app:s3cret@h/2"), "redis://app:***@h/2");
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}

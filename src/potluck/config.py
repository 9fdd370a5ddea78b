"""One Settings object, read from the environment (prefix POTLUCK_, nested groups split by `__`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabaseSettings(BaseModel):
    # SQLite under the data directory is the embedded default; a postgresql+asyncpg URL selects the full topology.
    url: str | None = None
    replica_urls: list[str] = Field(default_factory=list)
    # Under Patroni: its REST endpoints (any member answers for the cluster). The replica set then comes from the
    # cluster's /cluster, polled every topology_interval_seconds, and `url` should name every node
    # (postgresql+asyncpg://u@/db?host=h1:p1&host=h2:p2&host=h3:p3&target_session_attrs=read-write).
    patroni_urls: list[str] = Field(default_factory=list)
    topology_interval_seconds: float = Field(default=1.0, gt=0)
    # 20 kept, none on overflow: under load an overflow connection was opened and closed again and again (a
    # connect, a backend fork) while the same 20 at most were in use (docs/benchmarks.md, issue 15).
    pool_size: int = Field(default=20, ge=1, le=200)
    max_overflow: int = Field(default=0, ge=0, le=200)
    pool_timeout_seconds: float = Field(default=5.0, gt=0)
    statement_timeout_ms: int = Field(default=5000, ge=0)
    connect_timeout_seconds: float = Field(default=2.0, gt=0)
    # Between a leader's departure and the next promotion (a planned switchover: about 2 s) no node accepts
    # writes: a connection to the primary is retried for this long before the request gives up (503). Only the
    # connect is retried, never a statement: nothing has been sent yet, so it is safe for every request.
    leader_wait_seconds: float = Field(default=4.0, ge=0)
    # A replica read (connect included) that takes longer is abandoned and run again on another replica or the
    # primary: a frozen replica (no reset, no refusal) would otherwise hold it until statement_timeout.
    replica_read_timeout_seconds: float = Field(default=1.0, gt=0)
    # A replica more than this far behind (or paused, or unreachable) leaves the read rotation.
    replica_max_lag_seconds: float = Field(default=1.0, gt=0)
    lag_check_interval_seconds: float = Field(default=0.5, gt=0)
    # Behind PgBouncer in transaction mode: no named prepared statements (deploy/pgbouncer/README.md).
    pgbouncer_transaction_pooling: bool = False
    echo: bool = False


@dataclass(frozen=True)
class RedisTarget:
    """Where one Redis instance is: a plain URL, or a master that Sentinel names (followed across failovers)."""

    url: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""

    @property
    def via_sentinel(self) -> bool:
        return bool(self.sentinels)


def parse_host_port(value: str) -> tuple[str, int]:
    """`host:port` (a bracketed IPv6 host is unbracketed)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


class RedisSettings(BaseModel):
    # None means: no Redis, the in-process backends are used (unless `sentinels` is set).
    url: str | None = None
    # A non-evicting instance (noeviction) for what must not be evicted: the Celery broker, rate limits.
    coord_url: str | None = None
    # Sentinel ("host:port" each; JSON list in the environment). When set, every client connects to the masters
    # these sentinels name, `cache_master` and `coord_master`, and `url` / `coord_url` are not used.
    sentinels: list[str] = Field(default_factory=list)
    cache_master: str = "potluck-cache"
    coord_master: str = "potluck-coord"

    @field_validator("sentinels")
    @classmethod
    def _host_ports(cls, value: list[str]) -> list[str]:
        for each in value:
            parse_host_port(each)
        return value

    def sentinel_target(self, master: str) -> RedisTarget:
        return RedisTarget(sentinels=tuple(parse_host_port(s) for s in self.sentinels), master=master)


class CacheSettings(BaseModel):
    enabled: bool = True
    # The in-process first tier: a short hard TTL because its invalidation (pub/sub) is at-most-once.
    local_enabled: bool = True
    local_ttl_seconds: float = Field(default=5.0, gt=0)
    local_max_entries: int = Field(default=10_000, ge=1)
    # Redis calls fail fast: tens of milliseconds, no retries, then the database answers.
    timeout_ms: int = Field(default=50, ge=1)
    lease_ms: int = Field(default=3000, ge=10)
    lease_wait_ms: int = Field(default=500, ge=0)
    lease_poll_ms: int = Field(default=5, ge=1)
    xfetch_beta: float = Field(default=1.0, ge=0)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_reset_seconds: float = Field(default=1.0, gt=0)
    ack_timeout_ms: int = Field(default=200, ge=0)
    # How often a process that owes the store invalidations, or whose breaker is open, tries it again.
    recover_interval_ms: int = Field(default=50, ge=5)
    memory_max_entries: int = Field(default=50_000, ge=1)
    # Test hooks (fault injection endpoints). Never on in production.
    test_hooks: bool = False


class EdgeSettings(BaseModel):
    """The HTTP cache in front of the API (deploy/varnish): where purges go and how long a node may serve."""

    # Each edge node's purge endpoint (Varnish: http://host:port/); empty: no edge, nothing purged.
    purge_urls: list[str] = Field(default_factory=list)
    # The response header that carries surrogate keys (Surrogate-Key: Fastly, Varnish here; Cache-Tag: Cloudflare).
    key_header: str = "Surrogate-Key"
    # A write waits this long for every node's acknowledgement; never less than lease_ms (see cache/edge.py).
    purge_timeout_ms: int = Field(default=300, ge=1)
    # A node serves from its cache only until lease_ms after the purge debt it last received was read.
    lease_ms: int = Field(default=250, ge=1)
    heartbeat_ms: int = Field(default=80, ge=1)
    # Each edge node's hit log (varnishncsa: one recipe path per line), shipped to the view counts by the worker.
    view_logs: list[Path] = Field(default_factory=list)
    # Each view log's writer's pid file (varnishncsa -P), in view_logs' order: the worker rotates a log past either
    # bound below (renamed to <log>.1, SIGHUP to its writer, which reopens it). Empty: never (logrotate's job then).
    view_log_writers: list[Path] = Field(default_factory=list)
    view_log_rotate_bytes: int = Field(default=64 << 20, ge=0)  # 0: never by size
    view_log_rotate_seconds: float = Field(default=86_400.0, ge=0)  # 0: never by age
    view_log_rotate_interval_seconds: float = Field(default=30.0, gt=0)
    # The gateway's (nginx) error logs: their limit_req/limit_conn lines count 429s by limit (same job).
    gateway_logs: list[Path] = Field(default_factory=list)
    # Each gateway log's nginx pid file, in gateway_logs' order: rotated like the view logs (same bounds), with
    # SIGUSR1 (nginx reopens every log on it; SIGHUP would reload its configuration). Empty: never.
    gateway_log_writers: list[Path] = Field(default_factory=list)
    views_interval_seconds: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _timeout_covers_lease(self) -> EdgeSettings:
        if self.purge_urls and self.purge_timeout_ms < self.lease_ms:
            raise ValueError("edge.purge_timeout_ms must be at least edge.lease_ms")
        if self.purge_urls and self.heartbeat_ms >= self.lease_ms:
            raise ValueError("edge.heartbeat_ms must be below edge.lease_ms")
        if self.view_log_writers and len(self.view_log_writers) != len(self.view_logs):
            raise ValueError("edge.view_log_writers must name one pid file per edge.view_logs entry, in its order")
        if self.gateway_log_writers and len(self.gateway_log_writers) != len(self.gateway_logs):
            raise ValueError("edge.gateway_log_writers must name one pid file per edge.gateway_logs entry, in order")
        return self


class AuthSettings(BaseModel):
    # None means: a random key kept in the data directory (fine for one machine, set it for several).
    secret_key: SecretStr | None = None
    algorithm: str = "HS256"
    access_token_minutes: int = Field(default=15, ge=1)
    refresh_token_days: int = Field(default=14, ge=1)
    # argon2id cost parameters (RFC 9106 second recommended option by default).
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8)
    argon2_parallelism: int = Field(default=4, ge=1)
    # Hashes run on a pool of their own: at most this many at once per process (each holds argon2_memory_kib), on
    # threads that yield the CPU to request handling (nice +hash_nice, Linux): a login's ~150 ms of CPU on every
    # core was every other request's tail latency.
    hash_workers: int = Field(default=2, ge=1)
    hash_nice: int = Field(default=10, ge=0, le=19)
    # How long an API process trusts "this session is not revoked" before asking the revocation set again.
    revocation_recheck_seconds: float = Field(default=1.0, ge=0)
    # Verified tokens' claims kept per process (user/security.py ClaimsCache), each until its token expires.
    claims_cache_entries: int = Field(default=10_000, ge=0)


class MailSettings(BaseModel):
    """Account email (verification, password reset). Without smtp_host, messages are written as .eml files under
    data_dir/mail (the embedded default: read them there)."""

    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0)
    from_address: str = "Potluck <no-reply@potluck.local>"
    # Where the links in the messages point (the web client's pages that call the API with the token).
    app_base_url: str = "http://localhost:8000"
    verify_token_hours: float = Field(default=48.0, gt=0)
    reset_token_minutes: float = Field(default=30.0, gt=0)


class ThrottleSettings(BaseModel):
    """Limits per window (docs/security.md, "Throttles"). Failed logins back off exponentially past the limit."""

    enabled: bool = True
    login_account_limit: int = Field(default=5, ge=1)
    login_address_limit: int = Field(default=30, ge=1)
    login_window_seconds: float = Field(default=900.0, gt=0)
    login_backoff_base_seconds: float = Field(default=1.0, gt=0)
    login_backoff_max_seconds: float = Field(default=900.0, gt=0)
    register_per_address: int = Field(default=10, ge=1)
    register_window_seconds: float = Field(default=3600.0, gt=0)
    password_reset_per_address: int = Field(default=5, ge=1)
    password_reset_window_seconds: float = Field(default=3600.0, gt=0)
    uploads_per_user: int = Field(default=60, ge=1)
    uploads_window_seconds: float = Field(default=3600.0, gt=0)


class ApiSettings(BaseModel):
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    gzip_minimum_bytes: int = Field(default=1024, ge=0)
    # Origins a browser may call the API from (Starlette's CORSMiddleware); empty: no CORS headers at all.
    cors_origins: list[str] = Field(default_factory=list)
    # The scheme and authority clients reach the API at (https://api.example.com): Location and Link headers are
    # built on it. None: they are relative (/api/v1/...). Never taken from the request's Host header.
    public_base_url: str | None = Field(default=None, pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$")
    # Host header values served (`*.example.com` for subdomains); anything else is a 400. The default `*`
    # suits a laptop; production lists its names (docs/security.md). The probes are exempt.
    allowed_hosts: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    # Slow clients (docs/security.md): the whole header block within header_timeout_seconds of the connection
    # (or of the previous response), the body within body_timeout_seconds of the headers; headers over
    # max_header_bytes are refused.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=60.0, gt=0)
    max_header_bytes: int = Field(default=16_384, ge=1024)
    cors_max_age_seconds: int = Field(default=600, ge=0)
    # Strict-Transport-Security on responses to requests that came over TLS (0: none). Where nginx terminates TLS
    # it sends the header itself (deploy/nginx), so the app's is off by default.
    hsts_seconds: int = Field(default=0, ge=0)
    # The interactive docs at /docs (Swagger UI served by the app from the pinned swagger-ui-bundle package).
    docs_enabled: bool = True
    # Requests one process works on at once; past it, 503 + Retry-After before any database or Redis work
    # (middleware.LoadShedMiddleware, docs/capacity.md). 0: unbounded.
    max_in_flight: int = Field(default=64, ge=0)
    retry_after_seconds: int = Field(default=1, ge=1)
    # Once started, leave what startup built out of the garbage collector's full collections (kit/heap.py): each
    # walked it all and stopped the event loop for 90-260 ms.
    freeze_heap: bool = True


class MediaSettings(BaseModel):
    # Where image keys are served from (a CDN in production, the app's own /media in the embedded default).
    public_base_url: str = "/media"
    # Where image variants are stored (docs/media.md): files under `local_dir` (None: data_dir/media), served by
    # the app itself at /media, or an S3 bucket (any S3-protocol endpoint) behind a CDN.
    storage: Literal["local", "s3"] = "local"
    local_dir: Path | None = None
    s3_bucket: str = "potluck-media"
    s3_endpoint_url: str | None = None  # None: AWS itself; set for MinIO, moto, Ceph (path-style addressing)
    s3_region: str = "us-east-1"
    # None: boto3's own credential chain (instance profile, AWS_* environment, ~/.aws).
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_timeout_seconds: float = Field(default=10.0, gt=0)
    # Upload limits: bytes are counted while the body is read, pixels from the header before anything is decoded.
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(default=40_000_000, ge=1)
    # The variants every upload gets (never wider than the original), encoded as WebP at this quality.
    thumb_width: int = Field(default=320, ge=16, le=8192)
    medium_width: int = Field(default=960, ge=16, le=8192)
    large_width: int = Field(default=1920, ge=16, le=8192)
    webp_quality: int = Field(default=80, ge=1, le=100)
    # Uploads decoded at once per API process (a 40 MP image takes ~160 MB while it is processed): the size of
    # its pool of image processes, so decoding never runs on the API's own CPU time (event loop or GIL).
    processing_concurrency: int = Field(default=2, ge=1, le=64)
    # One image's budget in its process (from the moment it starts there): past it the process is killed and
    # replaced, and the upload is a 422 problem. A 40 MP JPEG takes 2-4 s on one core.
    processing_timeout_seconds: float = Field(default=15.0, gt=0)
    # A private recipe's images are served through signed URLs (S3: presigned GET; local disk: an HMAC-signed
    # /media path) that work this long after the API handed them out.
    signed_url_seconds: int = Field(default=300, ge=10, le=7 * 24 * 3600)


class EventsSettings(BaseModel):
    # Record events in the outbox. Off only for the outbox benchmark's baseline: nothing would be delivered.
    enabled: bool = True
    # Run the relay (and the view flush) inside the API process: None means "when no Redis is configured"
    # (the embedded default); with Redis, `potluck worker` runs them.
    relay_in_process: bool | None = None
    relay_batch_size: int = Field(default=100, ge=1, le=10_000)
    # Events of different aggregates delivered at once by one relay (1 on SQLite: one writer anyway).
    relay_concurrency: int = Field(default=8, ge=1, le=100)
    # A claimed event is someone else's until then; a relay that dies mid-delivery frees its events so late.
    claim_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=10, ge=1)
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=300.0, gt=0)
    # How often the in-process relay looks for events nobody told it about (a commit wakes it at once).
    poll_interval_seconds: float = Field(default=0.5, gt=0)
    # One relay run stops after this long, so a scheduled run never holds a worker forever.
    drain_budget_seconds: float = Field(default=10.0, gt=0)
    # Followers notified per INSERT ... SELECT (each its own transaction).
    fanout_batch_size: int = Field(default=5000, ge=1)
    # Views: pushed from process memory to Redis this often; flushed to the database this often.
    views_push_seconds: float = Field(default=1.0, gt=0)
    views_flush_seconds: float = Field(default=10.0, gt=0)
    # The backlog gauges (potluck_outbox_*) are read from the database this often.
    monitor_interval_seconds: float = Field(default=15.0, gt=0)
    delivered_retention_days: float = Field(default=7.0, gt=0)
    # Notifications and the view-flush ledger are kept this long: on PostgreSQL the `events.partitions` job drops
    # their months once wholly past it (a month is dropped up to a month late). A flush's ledger row must outlive
    # any retry of that flush (seconds to minutes), so days are plenty.
    notification_retention_days: float = Field(default=90.0, gt=0)
    stats_flush_retention_days: float = Field(default=30.0, gt=0)


class WorkerSettings(BaseModel):
    queue: str = "potluck"
    concurrency: int = Field(default=2, ge=1, le=64)
    # Beat sends the relay task this often (the delivery latency bound with a worker).
    relay_interval_seconds: float = Field(default=1.0, gt=0)
    purge_interval_seconds: float = Field(default=3600.0, gt=0)
    # The scheduled jobs (worker/schedule.py; in process in the embedded default): warm_cache, the trending
    # lists' recompute (their TTL is 600 s) and the search analytics rollup.
    warm_interval_seconds: float = Field(default=300.0, gt=0)
    trending_interval_seconds: float = Field(default=300.0, gt=0)
    search_rollup_interval_seconds: float = Field(default=60.0, gt=0)
    # The worker's main process serves the whole pool's metrics on this port (None: not served).
    metrics_port: int | None = Field(default=None, ge=1, le=65535)


class BackupSettings(BaseModel):
    """Scheduled PostgreSQL backups (schedule.py: backup.full, backup.incr), run by the worker through pgBackRest.

    Off by default: the embedded default has nothing to back up this way, and its in-process loop never runs
    these jobs (`in_process=False`). `potluck cluster up` turns them on for its stanza (potluck_ops/backup_steps.py).
    """

    enabled: bool = False
    pgbackrest_config: Path = Path("/etc/pgbackrest/pgbackrest.conf")
    stanza: str = "main"
    # pgBackRest reads the data dirs: as root, run it as this account (ignored when not root).
    run_as: str = "postgres"
    full_interval_seconds: float = Field(default=86_400.0, gt=0)  # the design: a full backup daily
    incr_interval_seconds: float = Field(default=3_600.0, gt=0)  # and an incremental hourly
    # The coordination Redis's RDB + AOF to the bucket (`potluck backup redis` in the local cluster); empty: no job.
    redis_command: list[str] = Field(default_factory=list)
    redis_interval_seconds: float = Field(default=3_600.0, gt=0)
    timeout_seconds: float = Field(default=6 * 3600.0, gt=0)


class ObservabilitySettings(BaseModel):
    log_level: str = "INFO"
    log_json: bool = True
    # Tracing (potluck.observability.tracing): off by default; spans go to an OTLP/HTTP collector.
    tracing_enabled: bool = False
    otlp_endpoint: str | None = None  # http://collector:4318; None: the OTEL_EXPORTER_OTLP_* environment
    # The share of requests and tasks that start a trace (a caller's `traceparent` decision is followed).
    tracing_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    service_name: str = "potluck"
    redis_info_interval_seconds: float = Field(default=5.0, gt=0)
    # Where the processes of one `potluck serve` (or `potluck worker`) keep their metrics for /metrics to merge
    # (prometheus_client's multiprocess mode). None: PROMETHEUS_MULTIPROC_DIR, else a temporary directory when
    # there are several processes. Emptied at startup: one directory per server, never shared by two.
    multiprocess_dir: Path | None = None
    # The internal listener: `potluck serve` binds this port on `metrics_host` next to the API's, and /metrics is
    # answered only there (404 on the public port; nginx denies it too). None: /metrics is served nowhere.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POTLUCK_", env_nested_delimiter="__", extra="ignore")

    environment: str = "development"
    data_dir: Path = Path(".potluck")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    throttle: ThrottleSettings = Field(default_factory=ThrottleSettings)
    mail: MailSettings = Field(default_factory=MailSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    edge: EdgeSettings = Field(default_factory=EdgeSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'potluck.db').resolve()}"

    @property
    def cache_redis(self) -> RedisTarget | None:
        """The cache instance (None: no Redis, the in-process cache)."""
        if self.redis.sentinels:
            return self.redis.sentinel_target(self.redis.cache_master)
        return RedisTarget(url=self.redis.url) if self.redis.url else None

    @property
    def coord_redis(self) -> RedisTarget | None:
        """The non-evicting Redis (Celery broker, view counts, search analytics); the cache instance only when no
        other is set."""
        if self.redis.sentinels:
            return self.redis.sentinel_target(self.redis.coord_master)
        url = self.redis.coord_url or self.redis.url
        return RedisTarget(url=url) if url else None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()

-- crier schema v1. Times are integer milliseconds since the Unix epoch (UTC).

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE subscribers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    roles       TEXT NOT NULL DEFAULT '',   -- ';'-joined
    nations     TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '',
    locale      TEXT NOT NULL DEFAULT 'en',
    locale_recorded TEXT NOT NULL DEFAULT '', -- when the language preference was recorded
    locale_source   TEXT NOT NULL DEFAULT '', -- how it was recorded
    timezone    TEXT NOT NULL DEFAULT 'Europe/London',
    phone       TEXT NOT NULL DEFAULT '',
    email       TEXT NOT NULL DEFAULT '',
    slack       TEXT NOT NULL DEFAULT '',
    quiet_start TEXT NOT NULL DEFAULT '',
    quiet_end   TEXT NOT NULL DEFAULT '',
    opted_out   TEXT NOT NULL DEFAULT '',   -- channel kinds the person opted out of, ';'-joined
    source      TEXT NOT NULL,              -- config, import, api
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Opt-outs by address (a STOP from a phone, a provider's 21610), kept by crier itself.
CREATE TABLE opt_outs (
    kind       TEXT NOT NULL,
    address    TEXT NOT NULL,
    scope      TEXT NOT NULL DEFAULT '',
    source     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (kind, address, scope)
);

CREATE TABLE incidents (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    severity    TEXT NOT NULL,
    status      TEXT NOT NULL,
    summary     TEXT NOT NULL DEFAULT '',
    impacts     TEXT NOT NULL DEFAULT '[]', -- JSON
    marking     TEXT NOT NULL DEFAULT 'OFFICIAL',
    next_update_at INTEGER NOT NULL DEFAULT 0,
    opened_at   INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    resolved_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE incident_updates (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    status      TEXT NOT NULL,
    severity    TEXT NOT NULL,
    text        TEXT NOT NULL,
    impacts     TEXT NOT NULL DEFAULT '[]',
    marking     TEXT NOT NULL DEFAULT 'OFFICIAL',
    PRIMARY KEY (incident_id, seq)
);

-- One row per trigger (briefing fire, incident event, manual send). The key
-- makes planning idempotent: a trigger is planned once, in one transaction.
CREATE TABLE triggers (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,              -- briefing, incident, send
    name        TEXT NOT NULL DEFAULT '',   -- briefing name or event
    incident_id TEXT NOT NULL DEFAULT '',
    planned     INTEGER NOT NULL DEFAULT 0, -- deliveries written
    created_at  INTEGER NOT NULL
);

-- Rendered content, stored once however many recipients share it.
CREATE TABLE messages (
    id       INTEGER PRIMARY KEY,
    hash     BLOB NOT NULL UNIQUE,
    subject  TEXT NOT NULL DEFAULT '',
    text     TEXT NOT NULL DEFAULT '',
    html     TEXT NOT NULL DEFAULT '',
    segments INTEGER NOT NULL DEFAULT 0     -- estimated SMS segments
);

-- The outbox and the delivery log in one: one row per trigger x subscriber x channel.
CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY,
    trigger_id    INTEGER NOT NULL REFERENCES triggers(id),
    subscriber_id TEXT NOT NULL,
    channel       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    address       TEXT NOT NULL DEFAULT '',
    incident_id   TEXT NOT NULL DEFAULT '',
    message_id    INTEGER REFERENCES messages(id),
    priority      INTEGER NOT NULL DEFAULT 0, -- higher first (critical alerts)
    status        TEXT NOT NULL,              -- queued sending sent delivered failed expired suppressed unknown
    reason        TEXT NOT NULL DEFAULT '',
    detail        TEXT NOT NULL DEFAULT '',
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL DEFAULT 0,
    lease_until   INTEGER NOT NULL DEFAULT 0,
    deadline      INTEGER NOT NULL DEFAULT 0,
    provider_id   TEXT NOT NULL DEFAULT '',
    segments      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    sent_at       INTEGER NOT NULL DEFAULT 0,
    ack           INTEGER NOT NULL DEFAULT 0,  -- 1 when its trigger asks for acknowledgement
    escalates_id  INTEGER NOT NULL DEFAULT 0,  -- the delivery this one escalates (0: none)
    provider_status TEXT NOT NULL DEFAULT '',  -- the provider's latest receipt (Twilio: sent, delivered, undelivered, failed)
    error_code    TEXT NOT NULL DEFAULT '',    -- the provider's error code from a receipt
    delivered_at  INTEGER NOT NULL DEFAULT 0,
    acked_at      INTEGER NOT NULL DEFAULT 0,
    ack_via       TEXT NOT NULL DEFAULT '',
    UNIQUE (trigger_id, subscriber_id, channel)
);
-- A claim walks the due queue in (priority, next_at, id) order and stops at
-- its limit, instead of sorting every due row of the channel.
CREATE INDEX deliveries_claim ON deliveries(channel, priority DESC, next_at, id) WHERE status = 'queued';
CREATE INDEX deliveries_sending ON deliveries(lease_until) WHERE status = 'sending';
-- Deliveries about an incident: the log by incident, and serial claims
-- (Slack threads), which look for an earlier unfinished delivery about the
-- same incident to the same place.
CREATE INDEX deliveries_incident ON deliveries(incident_id, channel, address, id) WHERE incident_id != '';
CREATE INDEX deliveries_subscriber ON deliveries(subscriber_id);
CREATE INDEX deliveries_provider ON deliveries(provider_id) WHERE provider_id != '';
CREATE INDEX deliveries_ackable ON deliveries(kind, address, id) WHERE ack = 1;

-- Acknowledgement requirements: one per trigger that asks for it.
CREATE TABLE ack_policies (
    trigger_id INTEGER PRIMARY KEY REFERENCES triggers(id),
    within_ms  INTEGER NOT NULL,             -- how long recipients have to acknowledge
    quorum     INTEGER NOT NULL DEFAULT 0,   -- acknowledgements needed; 0 = everyone
    ladder     TEXT NOT NULL DEFAULT '',     -- ';'-joined channel instances to escalate along, in order
    deputy     TEXT NOT NULL DEFAULT '',     -- audience to escalate to when the ladder is used up
    due_at     INTEGER NOT NULL,             -- planned + within
    state      TEXT NOT NULL DEFAULT 'open', -- open, met, escalated, closed
    closed_at  INTEGER NOT NULL DEFAULT 0
);

-- Who acknowledged what, when and how (one per trigger and person).
CREATE TABLE acks (
    trigger_id    INTEGER NOT NULL,
    subscriber_id TEXT NOT NULL,
    delivery_id   INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    via           TEXT NOT NULL,              -- sms, email, slack, api
    detail        TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (trigger_id, subscriber_id)
);

-- Every inbound SMS and what crier did with it.
CREATE TABLE inbound (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    from_addr   TEXT NOT NULL,
    to_addr     TEXT NOT NULL DEFAULT '',
    body        TEXT NOT NULL,
    action      TEXT NOT NULL,               -- stop, start, help, ack, unknown
    delivery_id INTEGER NOT NULL DEFAULT 0,
    provider_id TEXT NOT NULL DEFAULT ''
);

-- Every attempt and status change, for the evidence trail.
CREATE TABLE delivery_events (
    delivery_id INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX delivery_events_delivery ON delivery_events(delivery_id);

-- The first provider reference per incident x channel x address, so later
-- messages thread under it (Slack thread_ts, email In-Reply-To).
CREATE TABLE threads (
    incident_id TEXT NOT NULL,
    channel     TEXT NOT NULL,
    address     TEXT NOT NULL,
    ref         TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (incident_id, channel, address)
);

-- Each scheduled occurrence of a briefing, fired once.
CREATE TABLE schedule_runs (
    schedule   TEXT NOT NULL,
    due_at     INTEGER NOT NULL,
    fired_at   INTEGER NOT NULL,
    late       INTEGER NOT NULL DEFAULT 0,
    trigger_id INTEGER,
    error      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (schedule, due_at)
);

-- Idempotency-Key replay for the HTTP API: a retried POST returns the
-- first answer instead of acting twice.
CREATE TABLE api_requests (
    key        TEXT PRIMARY KEY,
    route      TEXT NOT NULL,
    body_hash  TEXT NOT NULL,
    status     INTEGER NOT NULL,
    response   BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- API tokens made with `crier tokens create`. The token itself is shown
-- once and never stored: only its public selector (to find the row) and a
-- SHA-256 of the whole token (compared in constant time). Revoked tokens
-- stay listed, so the name is never reused for a different holder.
CREATE TABLE api_tokens (
    name         TEXT PRIMARY KEY,
    role         TEXT NOT NULL,                 -- viewer, operator, admin
    selector     TEXT NOT NULL UNIQUE,
    hash         BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL DEFAULT 0,    -- recorded at most once a minute
    revoked_at   INTEGER NOT NULL DEFAULT 0
);

-- Dashboard users made with `crier users add`; passwords as bcrypt hashes.
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Dashboard sign-in sessions, keyed by a SHA-256 of the cookie value. A
-- session belongs to a user, a database token or a config token (kind).
CREATE TABLE sessions (
    hash       BLOB PRIMARY KEY,
    kind       TEXT NOT NULL,                   -- user, token, config
    subject    TEXT NOT NULL,                   -- the user's or the token's name
    role       TEXT NOT NULL,                   -- the role at sign-in
    binding    BLOB NOT NULL DEFAULT x'',      -- ties a config-token session to the token and the process (server)
    created_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL,                -- last use, recorded at most once a minute
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_subject ON sessions(kind, subject);

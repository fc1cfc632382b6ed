"""Versioned schema migrations (``PRAGMA user_version``), applied in one transaction."""

from __future__ import annotations

# Each entry migrates from version i to i + 1. Never edit a released entry: append a new one.
MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: chargers, connector status, transactions, message log
    """
    CREATE TABLE chargers (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL DEFAULT 'known' CHECK (state IN ('known', 'pending')),
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        last_address TEXT,
        connected INTEGER NOT NULL DEFAULT 0,
        refused_count INTEGER NOT NULL DEFAULT 0,
        refused_reason TEXT,
        vendor TEXT,
        model TEXT,
        serial TEXT,
        firmware TEXT,
        last_boot REAL
    );
    CREATE TABLE connector_status (
        charger_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        status TEXT NOT NULL,
        error_code TEXT NOT NULL,
        info TEXT,
        charger_time TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (charger_id, connector_id)
    );
    CREATE TABLE transactions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        charger_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        transaction_id INTEGER,
        origin TEXT NOT NULL CHECK (origin IN ('cloud', 'gateway')),
        id_tag TEXT NOT NULL,
        meter_start INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        meter_stop INTEGER,
        stopped_at TEXT,
        stop_reason TEXT,
        recorded_at REAL NOT NULL
    );
    CREATE INDEX transactions_by_charger ON transactions (charger_id, transaction_id);
    CREATE TABLE message_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        charger_id TEXT NOT NULL,
        direction TEXT NOT NULL,
        frame TEXT NOT NULL
    );
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    """,
    # 1 -> 2: cards, local-list mirror, auth cache, outbox, transaction ids, decisions, events
    """
    ALTER TABLE chargers ADD COLUMN idtag_format TEXT;
    ALTER TABLE chargers ADD COLUMN idtag_format_seen REAL;
    ALTER TABLE chargers ADD COLUMN local_list_version INTEGER;
    ALTER TABLE chargers ADD COLUMN capabilities TEXT;
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE cards (
        id_tag TEXT PRIMARY KEY,
        owner TEXT NOT NULL DEFAULT '',
        label TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'Accepted'
            CHECK (status IN ('Accepted', 'Blocked', 'Expired', 'Invalid')),
        expiry TEXT,
        parent_id_tag TEXT,
        chargers TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE cloud_list (
        id_tag TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        expiry TEXT,
        parent_id_tag TEXT
    );
    CREATE TABLE auth_cache (
        id_tag TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        expiry TEXT,
        parent_id_tag TEXT,
        learned_at REAL NOT NULL
    );
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        charger_id TEXT NOT NULL,
        action TEXT NOT NULL,
        payload TEXT NOT NULL,
        transaction_id INTEGER,
        queued_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'parked', 'delivered')),
        last_error TEXT,
        digest TEXT NOT NULL,
        delivered_at REAL
    );
    CREATE INDEX outbox_by_charger ON outbox (charger_id, state, seq);
    CREATE INDEX outbox_by_digest ON outbox (charger_id, digest);
    CREATE TABLE transaction_ids (
        charger_id TEXT NOT NULL,
        local_id INTEGER NOT NULL,
        cloud_id INTEGER,
        created_at REAL NOT NULL,
        PRIMARY KEY (charger_id, local_id)
    );
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        mode TEXT NOT NULL,
        inputs TEXT NOT NULL,
        outputs TEXT NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        charger_id TEXT,
        message TEXT NOT NULL,
        data TEXT
    );
    """,
    # 2 -> 3: the message log moved to memory (edgegw.store.messagelog): it wore out SD cards
    """
    DROP TABLE IF EXISTS message_log;
    """,
    # 3 -> 4: a session's cost is fixed when it stops (edgegw.store.sessions): when the gateway
    # recorded the stop, the tariff, the cost and the card's groups then
    """
    ALTER TABLE transactions ADD COLUMN stop_recorded_at REAL;
    ALTER TABLE transactions ADD COLUMN tariff TEXT;
    ALTER TABLE transactions ADD COLUMN cost REAL;
    ALTER TABLE transactions ADD COLUMN card_groups TEXT;
    """,
    # 4 -> 5: limits from outside (edgegw.store.limitlog): every activation of a [[limits]]
    # source (§14a EnWG ones kept two years), and the finished quarter-hours of peak shaving
    """
    CREATE TABLE limit_activations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL,
        para14a INTEGER NOT NULL,
        node TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        limit_l1_a REAL NOT NULL,
        limit_l2_a REAL NOT NULL,
        limit_l3_a REAL NOT NULL,
        granted_kw REAL,
        chargers INTEGER
    );
    CREATE INDEX limit_activations_by_start ON limit_activations (started_at);
    CREATE TABLE peak_quarters (
        start REAL PRIMARY KEY,
        average_kw REAL NOT NULL,
        projected_max_kw REAL NOT NULL,
        limited_s REAL NOT NULL,
        target_kw REAL NOT NULL
    );
    """,
    # 5 -> 6: OCPP 2.x sessions (edgegw.store.sessions201): the charger's string transaction
    # id, a meter start still to come, whether the gateway answered and queued the start
    """
    ALTER TABLE transactions ADD COLUMN tx_ref TEXT;
    ALTER TABLE transactions ADD COLUMN meter_start_missing INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE transactions ADD COLUMN queued INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX transactions_by_ref ON transactions (charger_id, tx_ref)
        WHERE tx_ref IS NOT NULL;
    """,
    # 6 -> 7: a cloud list entry's OCPP 2.x token type (edgegw.store.cards): KeyCode, eMAID...
    # entries are tokens matched literally, never card UIDs (NULL: a 1.6 idTag)
    """
    ALTER TABLE cloud_list ADD COLUMN token_type TEXT;
    """,
    # 7 -> 8: the auth cache's key spaces (edgegw.auth.cache): an answer about a 2.x token that
    # is no card UID (KeyCode, eMAID...: literal = 1) is kept apart from one about a card's
    # idTag of the same text; the rows so far are all about idTags (literal = 0)
    """
    CREATE TABLE auth_cache_typed (
        id_tag TEXT NOT NULL,
        literal INTEGER NOT NULL DEFAULT 0 CHECK (literal IN (0, 1)),
        status TEXT NOT NULL,
        expiry TEXT,
        parent_id_tag TEXT,
        learned_at REAL NOT NULL,
        PRIMARY KEY (id_tag, literal)
    );
    INSERT INTO auth_cache_typed (id_tag, literal, status, expiry, parent_id_tag, learned_at)
        SELECT id_tag, 0, status, expiry, parent_id_tag, learned_at FROM auth_cache;
    DROP TABLE auth_cache;
    ALTER TABLE auth_cache_typed RENAME TO auth_cache;
    """,
)

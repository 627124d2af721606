-- Guild rating settings and their audit trail.
-- Ratings are stored as the API's labels so the data stays readable and independent of enum order.

CREATE TABLE guild_settings (
    guild_id       INTEGER PRIMARY KEY,
    default_rating TEXT NOT NULL CHECK (default_rating IN ('sfw', 'questionable', 'nsfw'))
);

CREATE TABLE channel_overrides (
    guild_id   INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    rating     TEXT NOT NULL CHECK (rating IN ('sfw', 'questionable', 'nsfw')),
    PRIMARY KEY (guild_id, channel_id)
);

CREATE TABLE settings_audit (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id          INTEGER NOT NULL,
    actor_id          INTEGER NOT NULL,
    scope             TEXT NOT NULL CHECK (scope IN ('default', 'channel', 'reset')),
    channel_id        INTEGER,
    old_rating        TEXT CHECK (old_rating IN ('sfw', 'questionable', 'nsfw')),
    new_rating        TEXT CHECK (new_rating IN ('sfw', 'questionable', 'nsfw')),
    overrides_cleared INTEGER NOT NULL DEFAULT 0,
    -- ISO 8601, UTC
    changed_at        TEXT NOT NULL,
    CHECK ((scope = 'channel') = (channel_id IS NOT NULL))
);
